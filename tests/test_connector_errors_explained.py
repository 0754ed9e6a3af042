"""An unreachable or failing shop is reported in one line: the shop, what happened, what to do."""

from __future__ import annotations

import io
import socket

import pytest

from cartrescue.cli import EXIT_FAILED, main
from cartrescue.errors import ConnectorAuthError, ConnectorError, explain_connector_error


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_shop_is_one_plain_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SECRET", "cs_1")
    config = tmp_path / "cartrescue.toml"
    config.write_text(
        '[shop]\nname = "Nordlys"\n[connector]\ntype = "woocommerce"\n'
        f'url = "http://127.0.0.1:{_closed_port()}"\nconsumer_key = "ck_1"\n'
        'consumer_secret_env = "SECRET"\nattempts = 1\n'
        '[channels.sms]\ntype = "console"\n[store]\npath = "s.sqlite3"\n'
    )
    out = io.StringIO()
    code = main(["run", "--config", str(config)], out=out)
    assert code == EXIT_FAILED
    printed = out.getvalue() + capsys.readouterr().err
    line = next(x for x in out.getvalue().splitlines() if "pass did not complete" in x)
    assert "shop 'Nordlys' (woocommerce) could not be reached" in line
    assert "the next run tries again" in line
    assert "woocommerce: woocommerce:" not in printed
    assert "HTTPConnectionPool" not in printed
    assert "Max retries" not in printed


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            ConnectorError(
                "shopify: POST graphql.json failed after 5 attempt(s): ConnectionError: "
                "HTTPConnectionPool(host='x', port=1): Max retries exceeded (Connection refused)",
                connector="shopify",
            ),
            "shop 'Nordlys' (shopify) could not be reached after 5 attempt(s): the connection "
            "was refused; check the shop's address in [connector] and that the shop is up; "
            "the next run tries again",
        ),
        (
            ConnectorError(
                "shopify: POST graphql.json failed after 5 attempt(s): HTTP 503: down",
                connector="shopify",
                status=503,
            ),
            "shop 'Nordlys' (shopify) kept failing (HTTP 503) after 5 attempt(s); the shop is "
            "down or overloaded: the next run tries again; if this lasts, check the shop's status",
        ),
        (
            ConnectorAuthError(
                "woocommerce: GET wc/v3/orders was refused (HTTP 401): check consumer_key",
                connector="woocommerce",
                status=401,
            ),
            "shop 'Nordlys' (woocommerce) refused the credentials: GET wc/v3/orders was refused "
            "(HTTP 401): check consumer_key",
        ),
    ],
)
def test_connector_errors_name_the_shop_once(error, expected):
    connector = error.connector
    assert explain_connector_error(error, shop="Nordlys", connector=connector) == expected


def test_doctor_tells_an_unreachable_shop_in_words(tmp_path, monkeypatch):
    monkeypatch.setenv("SECRET", "cs_1")
    config = tmp_path / "cartrescue.toml"
    config.write_text(
        '[shop]\nname = "Nordlys"\n[connector]\ntype = "woocommerce"\n'
        f'url = "http://127.0.0.1:{_closed_port()}"\nconsumer_key = "ck_1"\n'
        'consumer_secret_env = "SECRET"\nattempts = 1\nconsent = ["email"]\n'
        '[channels.email]\ntype = "console"\n[store]\npath = "s.sqlite3"\n'
    )
    out = io.StringIO()
    code = main(["doctor", "--config", str(config)], out=out)
    assert code == EXIT_FAILED
    assert "(woocommerce) could not be reached" in out.getvalue()
    assert "HTTPConnectionPool" not in out.getvalue()
