"""Engagement signals from the providers' status callbacks, and LINK Mobility's MO messages:
each callback signed (or authenticated) as its provider documents, refused when it is not,
counted once however often it comes, and never moving a message's status backwards."""

from __future__ import annotations

import base64
import json
import logging
from datetime import UTC, datetime, timedelta

import pytest

from cartrescue.clock import FrozenClock
from cartrescue.store.base import Signal
from cartrescue.store.sqlite import SQLiteStore
from cartrescue.web import make_app
from cartrescue_testing.callbacks import (
    Callback,
    linkmobility_delivery_report,
    linkmobility_mo,
    twilio_status,
    vonage_receipt,
    whatsapp_statuses,
)
from tests.conftest import load_fixture
from tests.test_web import APP_SECRET, PUBLIC, TWILIO_TOKEN, call, serving

VONAGE_SECRET = "vonage-signature-secret-0123"
GATE_USER, GATE_PASSWORD = "cartrescue-gate", "gate-password-0123456789"
NOW = datetime(2026, 3, 11, 12, 0, tzinfo=UTC)
PHONE = "+4791234567"

SENT = {
    "c1:1:sms": "SM" + "1" * 32,
    "c2:1:sms": "SM" + "2" * 32,
    "c1:2:whatsapp": "wamid.HBgLNDc5MTIzNDU2NxUCABEYEjA",
    "c3:1:sms": "0400000013A2B4C1",
    "c4:1:sms": "QC5BHHuqylsAAAFiQ08nX2ph",
}


@pytest.fixture
def store():
    with SQLiteStore(":memory:") as store:
        for key, provider_id in SENT.items():
            checkout_id, step, channel = key.split(":")
            assert store.claim(
                key,
                checkout_id=checkout_id,
                step=int(step),
                channel=channel,
                recipient=PHONE,
                contacts=[PHONE],
                at=NOW,
                cap_since=None,
                run_id=None,
            )
            store.finish(key, "sent", NOW, provider_id=provider_id)
        yield store


@pytest.fixture
def app(store):
    return make_app(
        store,
        public_url=PUBLIC,
        twilio_auth_token=TWILIO_TOKEN,
        whatsapp_app_secret=APP_SECRET,
        vonage_signature_secret=VONAGE_SECRET,
        linkmobility_gate_username=GATE_USER,
        linkmobility_gate_password=GATE_PASSWORD,
        clock=FrozenClock(NOW),
    )


def deliver(app, callback: Callback) -> int:
    status, _, _ = call(
        app, callback.method, callback.path, callback.body, dict(callback.headers), callback.query
    )
    return status


def figures(store, channel):
    counts = store.signal_counts()[channel]
    return counts.sent, counts.delivered, counts.read, counts.failed


# -- Twilio ---------------------------------------------------------------------------------
def test_twilio_status_callbacks_count_once_and_only_move_forward(app, store):
    sid = SENT["c1:1:sms"]
    for status in ("queued", "sent", "delivered", "delivered", "sent"):
        assert deliver(app, twilio_status(TWILIO_TOKEN, PUBLIC, sid, status)) == 200
    assert deliver(app, twilio_status(TWILIO_TOKEN, PUBLIC, SENT["c2:1:sms"], "undelivered")) == 200
    assert figures(store, "sms") == (4, 1, 0, 1)


def test_a_wrongly_signed_twilio_status_is_refused_and_changes_nothing(app, store):
    good = twilio_status(TWILIO_TOKEN, PUBLIC, SENT["c1:1:sms"], "delivered")
    forged = twilio_status("another-token", PUBLIC, SENT["c1:1:sms"], "delivered")
    elsewhere = twilio_status(TWILIO_TOKEN, "https://evil.example", SENT["c1:1:sms"], "delivered")
    for callback in (forged, elsewhere, good.tampered()):
        assert deliver(app, callback) == 403
    assert figures(store, "sms") == (4, 0, 0, 0)


def test_a_status_for_an_unknown_message_is_ignored_with_a_log_line(app, store, caplog):
    with caplog.at_level(logging.INFO, logger="cartrescue.web"):
        callback = twilio_status(TWILIO_TOKEN, PUBLIC, "SM" + "9" * 32, "delivered")
        assert deliver(app, callback) == 200
    assert "unknown message SM999" in caplog.text
    assert figures(store, "sms") == (4, 0, 0, 0)


# -- WhatsApp -------------------------------------------------------------------------------
def test_whatsapp_statuses_count_reads_and_a_late_delivered_does_not_downgrade(app, store):
    wamid = SENT["c1:2:whatsapp"]
    for statuses in ([(wamid, "sent")], [(wamid, "read")], [(wamid, "delivered"), (wamid, "sent")]):
        callback = whatsapp_statuses(APP_SECRET, statuses, at=NOW, recipient=PHONE)
        assert deliver(app, callback) == 200
    assert figures(store, "whatsapp") == (1, 1, 1, 0)
    assert store.signal_counts()["whatsapp"].read_rate == 1.0


def test_a_wrongly_signed_whatsapp_status_is_refused(app, store):
    callback = whatsapp_statuses(
        APP_SECRET, [(SENT["c1:2:whatsapp"], "read")], at=NOW, recipient=PHONE
    )
    assert deliver(app, callback.tampered()) == 403
    forged = whatsapp_statuses("not-the-secret", [(SENT["c1:2:whatsapp"], "read")], at=NOW,
                               recipient=PHONE)  # fmt: skip
    assert deliver(app, forged) == 403
    assert figures(store, "whatsapp") == (1, 0, 0, 0)


def test_a_failed_whatsapp_message_counts_as_sent_and_failed(app, store):
    wamid = SENT["c1:2:whatsapp"]
    callback = whatsapp_statuses(
        APP_SECRET,
        [(wamid, "failed")],
        at=NOW,
        recipient=PHONE,
        callback_data={wamid: "c1:2:whatsapp"},
    )
    assert deliver(app, callback) == 200
    assert [e.status for e in store.outbox_for("c1") if e.channel == "whatsapp"] == ["failed"]
    assert figures(store, "whatsapp") == (1, 0, 0, 1)


# -- Vonage ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("method", "as_json"), [("md5hash", False), ("md5hash", True)])
def test_vonage_delivery_receipts(app, store, method, as_json):
    message_id = SENT["c3:1:sms"]
    for status in ("accepted", "delivered", "delivered", "failed"):
        receipt = vonage_receipt(VONAGE_SECRET, message_id, status, at=NOW, as_json=as_json)
        assert deliver(app, receipt) == 200
    assert figures(store, "sms") == (4, 1, 0, 0)


def test_vonage_receipts_signed_with_an_hmac_method(store):
    app = make_app(
        store,
        public_url=PUBLIC,
        vonage_signature_secret=VONAGE_SECRET,
        vonage_signature_method="sha256",
        clock=FrozenClock(NOW),
    )
    receipt = vonage_receipt(VONAGE_SECRET, SENT["c3:1:sms"], "expired", at=NOW, method="sha256")
    assert deliver(app, receipt) == 200
    assert figures(store, "sms") == (4, 0, 0, 1)


def test_a_wrongly_signed_or_stale_vonage_receipt_is_refused(app, store):
    message_id = SENT["c3:1:sms"]
    forged = vonage_receipt("not-the-secret", message_id, "delivered", at=NOW)
    stale = vonage_receipt(VONAGE_SECRET, message_id, "delivered", at=NOW - timedelta(hours=1))
    hmac_signed = vonage_receipt(VONAGE_SECRET, message_id, "delivered", at=NOW, method="sha1")
    for callback in (forged, stale, hmac_signed):
        assert deliver(app, callback) == 403
    assert figures(store, "sms") == (4, 0, 0, 0)


# -- LINK Mobility delivery reports ---------------------------------------------------------
def test_linkmobility_delivery_reports(app, store):
    message_id = SENT["c4:1:sms"]
    for part, code in ((f"{message_id}$0", 1005), (f"{message_id}$0", 1001), (message_id, 1006)):
        report = linkmobility_delivery_report(GATE_USER, GATE_PASSWORD, part, code, at=NOW)
        assert deliver(app, report) == 200
    report = linkmobility_delivery_report(GATE_USER, GATE_PASSWORD, SENT["c2:1:sms"], 2106, at=NOW)
    assert deliver(app, report) == 200
    assert figures(store, "sms") == (4, 1, 0, 1)


def test_the_documented_delivery_report_example_is_read(app, store, caplog):
    body = json.dumps(load_fixture("linkmobility/dlr_delivered.json")).encode()
    auth = base64.b64encode(f"{GATE_USER}:{GATE_PASSWORD}".encode()).decode()
    with caplog.at_level(logging.INFO, logger="cartrescue.web"):
        status, _, _ = call(
            app, "POST", "/linkmobility/dlr", body, {"Authorization": f"Basic {auth}"}
        )
    assert status == 200
    assert "linkmobility status delivered for unknown message 0 ignored" in caplog.text


@pytest.mark.parametrize(
    "authorization",
    [None, "Basic " + base64.b64encode(b"cartrescue-gate:wrong").decode(), "Bearer x", "Basic é"],
)
def test_a_gate_request_without_the_credentials_is_refused(app, store, authorization):
    for callback in (
        linkmobility_delivery_report(GATE_USER, GATE_PASSWORD, SENT["c4:1:sms"], 1001, at=NOW),
        linkmobility_mo(GATE_USER, GATE_PASSWORD, PHONE, "STOP", "mo-1", at=NOW),
    ):
        headers = {k: v for k, v in callback.headers.items() if k != "Authorization"}
        if authorization is not None:
            headers["Authorization"] = authorization
        status, response_headers, _ = call(app, "POST", callback.path, callback.body, headers)
        assert status == 401
        assert response_headers["WWW-Authenticate"].startswith("Basic realm=")
    assert figures(store, "sms") == (4, 0, 0, 0)
    assert store.optouts_for([PHONE]) == set()


def test_without_gate_credentials_the_routes_are_not_mounted(store):
    app = make_app(store, public_url=PUBLIC, clock=FrozenClock(NOW))
    report = linkmobility_delivery_report(GATE_USER, GATE_PASSWORD, SENT["c4:1:sms"], 1001, at=NOW)
    assert deliver(app, report) == 404


# -- LINK Mobility MO -----------------------------------------------------------------------
def test_a_linkmobility_stop_opts_out_once_and_start_opts_back_in(app, store):
    stop = linkmobility_mo(GATE_USER, GATE_PASSWORD, PHONE, "Stopp", "mo-1", at=NOW)
    assert deliver(app, stop) == 200
    assert store.optouts_for([PHONE]) == {"sms"}
    (entry,) = store.list_optouts()
    assert entry.source == "linkmobility"
    start = linkmobility_mo(GATE_USER, GATE_PASSWORD, PHONE, "START", "mo-2", at=NOW)
    assert deliver(app, start) == 200
    assert store.optouts_for([PHONE]) == set()
    # The STOP delivered again (same messageId) is taken once: it does not opt out again.
    assert deliver(app, stop) == 200
    assert store.optouts_for([PHONE]) == set()


def test_a_linkmobility_reply_is_a_conversation_recorded_once(app, store):
    from tests.conftest import make_checkout

    store.upsert_checkout(make_checkout("c9", phone=PHONE), NOW)
    reply = linkmobility_mo(GATE_USER, GATE_PASSWORD, PHONE, "Finnes den i blått?", "mo-7", at=NOW)
    assert deliver(app, reply) == 200
    assert deliver(app, reply) == 200
    (entry,) = store.conversation("c9")
    assert (entry.text, entry.source, entry.direction) == (
        "Finnes den i blått?",
        "linkmobility",
        "in",
    )


def test_the_documented_mo_example_is_taken(app, store):
    body = json.dumps(load_fixture("linkmobility/mo_keyword.json")).encode()
    auth = base64.b64encode(f"{GATE_USER}:{GATE_PASSWORD}".encode()).decode()
    status, _, data = call(
        app, "POST", "/linkmobility/sms", body, {"Authorization": f"Basic {auth}"}
    )
    assert (status, data) == (200, b"ok\n")


@pytest.mark.parametrize("body", [b"", b"[1]", b'{"source": "+4791234567"}', b"\xff\xfe"])
def test_a_malformed_mo_is_a_400(app, body):
    auth = base64.b64encode(f"{GATE_USER}:{GATE_PASSWORD}".encode()).decode()
    status, _, _ = call(app, "POST", "/linkmobility/sms", body, {"Authorization": f"Basic {auth}"})
    assert status == 400


def test_gate_callbacks_over_a_real_socket(store):
    app = make_app(
        store,
        public_url=PUBLIC,
        linkmobility_gate_username=GATE_USER,
        linkmobility_gate_password=GATE_PASSWORD,
    )
    with serving(app) as base:
        report = linkmobility_delivery_report(
            GATE_USER, GATE_PASSWORD, SENT["c4:1:sms"], 1001, at=NOW
        )
        assert report.post(base).status_code == 200
        refused = linkmobility_delivery_report(GATE_USER, "wrong", SENT["c1:1:sms"], 1001, at=NOW)
        answer = refused.post(base)
        assert answer.status_code == 401
        assert "Basic" in answer.headers["WWW-Authenticate"]
    assert figures(store, "sms") == (4, 1, 0, 0)
    assert Signal.DELIVERED.rank > Signal.SENT.rank


def test_the_gate_credentials_come_from_web_together():
    from cartrescue.errors import ConfigError
    from cartrescue.web_settings import web_settings

    table = {"public_url": PUBLIC, "linkmobility_gate_username": GATE_USER}
    with pytest.raises(ConfigError, match="linkmobility_gate_password_env together"):
        web_settings({"web": table}, {})
    table["linkmobility_gate_password_env"] = "LINK_GATE_PASSWORD"
    settings = web_settings({"web": table}, {"LINK_GATE_PASSWORD": GATE_PASSWORD})
    assert settings is not None
    assert (settings.linkmobility_gate_username, settings.linkmobility_gate_password) == (
        GATE_USER,
        GATE_PASSWORD,
    )
    with SQLiteStore(":memory:") as store:
        app = settings.app(store, clock=FrozenClock(NOW))
        mo = linkmobility_mo(GATE_USER, GATE_PASSWORD, PHONE, "STOP", "mo-1", at=NOW)
        assert deliver(app, mo) == 200
        assert store.optouts_for([PHONE]) == {"sms"}
