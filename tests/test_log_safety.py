"""Nothing secret and no contact in the logs: a pass with induced failures at the most
verbose level, through the real ``cartrescue`` command line, against the fake shops and a
loopback SMS provider; every log line is scanned for every configured secret and contact."""

from __future__ import annotations

import io
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cartrescue.cli import main
from cartrescue.clock import FrozenClock
from cartrescue.errors import PermanentSendError, SendOutcomeUnknown, TransientSendError
from cartrescue.logsafe import RedactingFilter, parse_levels
from cartrescue.store import SQLiteStore
from cartrescue_testing import MemoryChannel
from cartrescue_testing.contracts import LoopbackProvider, Recorded, Reply
from cartrescue_testing.fake_shopify import FakeShopify
from cartrescue_testing.fake_woocommerce import FakeWooCommerce

from .conftest import NOON, LogScan, load_fixture, make_checkout

SID = "AC" + "0" * 32
TWILIO_TOKEN = "twilio-token-0123456789abcdef"
UNSUBSCRIBE = "an-unsubscribe-secret-0123456789"
HASH_KEY = "hash-key-" + "9" * 32
PEOPLE = [
    ("2001", "kari.nordmann@example.no", "+4791234567"),  # refused by the provider (400)
    ("2002", "ola.nordmann@example.no", "+4791234568"),  # provider error (500), then sent
    ("2003", "per.hansen@example.no", "+4791234569"),  # provider too slow (timeout)
    ("2004", "nina.berg@example.no", "+4791234570"),  # sent
]


def _midday_zone() -> str:
    """A zone where it is about noon now, so the send window never holds the test's sends."""
    offset = 12 - datetime.now(UTC).hour
    return "UTC" if offset == 0 else f"Etc/GMT{-offset:+d}"


def _checkouts() -> list[Any]:
    abandoned = datetime.now(UTC) - timedelta(hours=2)
    return [
        make_checkout(id, email=email, phone=phone, abandoned_at=abandoned, timezone=_midday_zone())
        for id, email, phone in PEOPLE
    ]


_FAILED: set[str] = set()


def _twilio(request: Recorded) -> Reply:
    to = request.form().get("To", "")
    if to == PEOPLE[1][2] and to not in _FAILED:
        _FAILED.add(to)
        return Reply(500, {"message": f"internal error sending to {to}"})
    if to == PEOPLE[0][2]:
        return Reply(
            400,
            {
                "code": 21211,
                "message": f"The 'To' number {to} is not a valid phone number.",
                "status": 400,
            },
        )
    if to == PEOPLE[2][2]:
        return Reply(201, load_fixture("twilio/message_created.json"), delay=1.5)
    return Reply(201, load_fixture("twilio/message_created.json"))


COMMON = f"""
[shop]
name = "Nordlys Design"
timezone = "Europe/Oslo"
home_url = "https://nordlys.example"

[channels.sms]
type = "twilio"
account_sid = "{SID}"
auth_token_env = "TWILIO_AUTH_TOKEN"
from_number = "+4759440000"
timeout = [1.0, 0.5]

[policy]
quiet_hours = "00:00-23:59"

[web]
public_url = "https://nordlys.example/cartrescue"
unsubscribe_secret_env = "UNSUBSCRIBE_SECRET"

[store]
path = "store.sqlite3"
hash_key_env = "CARTRESCUE_HASH_KEY"
"""


def _run(config: Path, capsys: pytest.CaptureFixture[str], scan: LogScan) -> int:
    code = main(
        ["-vv", "--log-level", "root=DEBUG", "run", "--config", str(config)],
        out=io.StringIO(),
    )
    scan.add_text(capsys.readouterr().err)
    return code


def _env(monkeypatch: pytest.MonkeyPatch, **values: str) -> list[str]:
    values = {
        "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "UNSUBSCRIBE_SECRET": UNSUBSCRIBE,
        "CARTRESCUE_HASH_KEY": HASH_KEY,
        **values,
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return list(values.values())


def test_woocommerce_with_query_string_auth_and_failures_logs_no_secret_or_contact(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    log_scan: LogScan,
) -> None:
    with (
        FakeWooCommerce(is_ssl=True, drops_authorization=True) as shop,
        LoopbackProvider(_twilio) as twilio,
    ):
        for checkout in _checkouts():
            shop.add_checkout(checkout)
        secrets = _env(monkeypatch, WC_KEY=shop.consumer_key, WC_SECRET=shop.consumer_secret)
        log_scan.watch(secrets=secrets, contacts=[c for p in PEOPLE for c in p[1:]])
        config = tmp_path / "cartrescue.toml"
        config.write_text(
            COMMON.replace("[channels.sms]", f'[channels.sms]\nbase_url = "{twilio.url}"')
            + f"""
[connector]
type = "woocommerce"
url = "https://shop.example"
base_url = "{shop.rest_url}"
consumer_key_env = "WC_KEY"
consumer_secret_env = "WC_SECRET"
query_string_auth = true
consent = ["sms"]
"""
        )
        # The shop's first answer is an overloaded proxy echoing the request, secrets and all.
        echo = (
            f"<h1>503</h1> GET /wp-json/wc/v3/orders?consumer_key={shop.consumer_key}"
            f"&consumer_secret={shop.consumer_secret}&search=kari.nordmann%40example.no"
        )
        shop.fail_next(503, body=echo, headers={"Retry-After": "0"})
        _FAILED.clear()
        _run(config, capsys, log_scan)
        # A second pass: the key was revoked (401 echoing the secret): the pass stops.
        shop.fail_next(
            401,
            body=f'{{"code":"woocommerce_rest_authentication_error","message":"bad '
            f'{shop.consumer_secret} for kari.nordmann@example.no"}}',
            times=10,
        )
        _run(config, capsys, log_scan)
        urls = [r.getMessage() for r in log_scan.records if r.name.startswith("urllib3")]
    assert twilio.requests, "the pass reached the SMS provider"
    assert any("consumer_secret=***" in line for line in urls), "urllib3 logged at DEBUG"
    assert any("search=" in line or "include=" in line for line in urls), "purchase checks ran"
    scanned = log_scan.check()
    print(f"scanned {scanned} log lines: 0 with a secret or a contact")


def test_shopify_with_failures_logs_no_secret_or_contact(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    log_scan: LogScan,
) -> None:
    with (
        FakeShopify.from_checkouts(_checkouts(), throttle=False) as shop,
        LoopbackProvider(_twilio) as twilio,
    ):
        secrets = _env(monkeypatch, SHOPIFY_ADMIN_TOKEN=shop.token)
        log_scan.watch(secrets=secrets, contacts=[c for p in PEOPLE for c in p[1:]])
        config = tmp_path / "cartrescue.toml"
        config.write_text(
            COMMON.replace("[channels.sms]", f'[channels.sms]\nbase_url = "{twilio.url}"')
            + f"""
[connector]
type = "shopify"
shop = "{shop.shop}"
token_env = "SHOPIFY_ADMIN_TOKEN"
base_url = "{shop.base_url}"
"""
        )
        shop.fail_next(502, headers={"Retry-After": "0"})
        _FAILED.clear()
        _run(config, capsys, log_scan)
        shop.fail_next(401, times=10)
        _run(config, capsys, log_scan)
    assert twilio.requests
    scanned = log_scan.check()
    print(f"scanned {scanned} log lines: 0 with a secret or a contact")


def test_other_libraries_log_warnings_only_unless_named(capsys: pytest.CaptureFixture[str]) -> None:
    main(["-vv", "demo"], out=io.StringIO())
    assert logging.getLogger("cartrescue").isEnabledFor(logging.DEBUG)
    assert not logging.getLogger("urllib3").isEnabledFor(logging.INFO)
    main(["-v", "--log-level", "urllib3=DEBUG", "demo"], out=io.StringIO())
    assert logging.getLogger("urllib3").isEnabledFor(logging.DEBUG)
    assert parse_levels(["urllib3=debug,shopify=INFO"]) == {
        "urllib3": logging.DEBUG,
        "shopify": logging.INFO,
    }
    with pytest.raises(ValueError, match="NAME=LEVEL"):
        parse_levels(["urllib3=LOUD"])


def test_the_filter_redacts_secrets_in_every_form_and_masks_contacts() -> None:
    redacting = RedactingFilter(["cs_secret/value+1", "short"])
    record = logging.LogRecord(
        "urllib3.connectionpool",
        logging.DEBUG,
        __file__,
        1,
        '"GET /orders?consumer_secret=%s&search=%s HTTP/1.1" 200',
        ("cs_secret%2Fvalue%2B1", "kari%40example.no"),
        None,
    )
    assert redacting.filter(record)
    line = logging.Formatter("%(message)s").format(record)
    assert line == '"GET /orders?consumer_secret=***&search=k***@example.no HTTP/1.1" 200'
    try:
        raise RuntimeError("cs_secret/value+1 refused for +4791234567")
    except RuntimeError:
        import sys

        failed = logging.LogRecord("x", logging.ERROR, __file__, 1, "boom", None, sys.exc_info())
    redacting.filter(failed)
    text = logging.Formatter("%(message)s").format(failed)
    assert "cs_secret" not in text and "91234567" not in text and "*** refused" in text


@pytest.mark.parametrize(
    "error",
    [
        lambda to: PermanentSendError(f"{to} is not a valid number", provider="t", code=21211),
        lambda to: TransientSendError(f"429 for {to}", provider="t"),
        lambda to: SendOutcomeUnknown(f"read timeout sending to {to}", provider="t"),
        lambda to: RuntimeError(f"bug in a plugin: {to} / kari%40example.no"),
    ],
)
def test_the_engine_logs_no_contact_even_without_the_filter(error: Any, log_scan: LogScan) -> None:
    """The library's own records are clean before any filter: a program that logs
    cartrescue without :class:`RedactingFilter` still gets no contact."""
    from .test_engine import ListConnector, recovery

    def fail(message: Any) -> None:
        raise error(message.to)

    log_scan.watch(contacts=["kari@example.no", "+4791234567"])
    with SQLiteStore(":memory:") as store:
        store.start_at(NOON - timedelta(days=1))
        channels = [MemoryChannel("sms", fail=fail), MemoryChannel("email", fail=fail)]
        recovery(
            ListConnector([make_checkout("c1")]),
            store,
            FrozenClock(NOON + timedelta(hours=1)),
            channels=channels,
        ).run()
    assert any(r.levelno >= logging.WARNING for r in log_scan.records)
