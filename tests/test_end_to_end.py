"""One shop, wired from cartrescue.toml alone: Shopify (fake, loopback) → Twilio (loopback
provider) and SMTP (aiosmtpd) → short links and one-click unsubscribe served by the web app."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from aiosmtpd.controller import Controller

from cartrescue.clock import FrozenClock
from cartrescue.config import load_config
from cartrescue.web import make_server
from cartrescue.web_settings import web_settings
from cartrescue_testing.contracts import LoopbackProvider, Reply
from cartrescue_testing.fake_shopify import FakeShopify

from .channels.conftest import Mailbox, free_port
from .conftest import NOON, load_fixture, make_checkout

SID = "AC" + "0" * 32


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


@pytest.fixture
def world(tmp_path):
    checkouts = [
        make_checkout("1001", email="kari@example.no", phone="+4791234567", email_consent=True),
        make_checkout(
            "1002", email="ola@example.no", phone=None, sms_consent=False, email_consent=True
        ),
    ]
    mailbox = Mailbox()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    twilio = LoopbackProvider(lambda r: Reply(201, load_fixture("twilio/message_created.json")))
    with FakeShopify.from_checkouts(checkouts, throttle=False) as shop, twilio:
        config_path = tmp_path / "cartrescue.toml"
        config_path.write_text(
            f"""
[shop]
name = "Nordlys Design"
timezone = "Europe/Oslo"
home_url = "https://nordlys.example"

[connector]
type = "shopify"
shop = "{shop.shop}"
token_env = "SHOPIFY_ADMIN_TOKEN"
base_url = "{shop.base_url}"

[channels.sms]
type = "twilio"
account_sid = "{SID}"
auth_token_env = "TWILIO_AUTH_TOKEN"
from_number = "+4759440000"
base_url = "{twilio.url}"

[channels.email]
type = "smtp"
host = "127.0.0.1"
port = {smtp.port}
security = "none"
sender = "Nordlys Design <hei@nordlys.example>"

[links]
base_url = "https://go.nordlys.example/r/"

[web]
public_url = "https://nordlys.example/cartrescue"
unsubscribe_secret_env = "UNSUBSCRIBE_SECRET"

[store]
path = "store.sqlite3"
"""
        )
        env = {
            "SHOPIFY_ADMIN_TOKEN": shop.token,
            "TWILIO_AUTH_TOKEN": "twilio-token-0123456789",
            "UNSUBSCRIBE_SECRET": "an-unsubscribe-secret-0123456789",
        }
        config = load_config(config_path, env=env)
        yield config, shop, twilio, mailbox
    smtp.stop()


def test_a_pass_configured_from_toml_sends_tracks_and_attributes(world):
    config, shop, twilio, mailbox = world
    clock = FrozenClock(NOON + timedelta(hours=1))
    store = config.store()
    store.start_at(NOON - timedelta(days=1))
    report = config.recovery(clock=clock, store=store).run()
    assert report.ok, report.summary()
    assert report.counts["sent"] == 2, report.summary()

    # Kari gets one SMS through Twilio, carrying a short link that fits one segment.
    (request,) = twilio.requests
    form = request.form()
    assert form["To"] == "+4791234567"
    assert form["From"] == "+4759440000"
    short = next(w for w in form["Body"].split() if w.startswith("https://go.nordlys.example/r/"))
    assert len(form["Body"]) <= 160

    # Ola gets an email with one-click unsubscribe.
    (mail,) = mailbox.messages()
    assert mail["To"] == "ola@example.no"
    unsubscribe = mail["List-Unsubscribe"].strip("<>")
    assert unsubscribe.startswith("https://nordlys.example/cartrescue/unsubscribe/")
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    # The web app answers both, the way `cartrescue serve` runs it.
    settings = web_settings(config.data, config.env)
    links = config.links(store)
    app = settings.app(store, mounts={links.path: links.app()})
    server = make_server(app, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        opener = urllib.request.build_opener(NoRedirect)
        with pytest.raises(urllib.error.HTTPError) as redirect:
            opener.open(base + urlsplit(short).path)
        assert redirect.value.code == 302
        target = redirect.value.headers["Location"]
        assert target.startswith("https://shop.example/checkouts/1001/recover")
        assert parse_qs(urlsplit(target).query)["utm_source"] == ["cartrescue"]

        post = urllib.request.Request(
            base + urlsplit(unsubscribe).path.removeprefix("/cartrescue"),
            data=b"List-Unsubscribe=One-Click",
            method="POST",
        )
        with urllib.request.urlopen(post) as answer:
            assert answer.status == 200
    finally:
        server.shutdown()
        server.server_close()
    assert store.optouts_for(["ola@example.no"]) == {"email"}

    # Kari pays; the next pass sees it and credits the SMS whose link she clicked.
    shop.complete_checkout("1001", clock() + timedelta(minutes=30))
    clock.advance(timedelta(hours=1))
    report = config.recovery(clock=clock, store=store).run()
    assert report.ok, report.summary()
    stats = store.stats(clock())
    assert stats.clicks == 1
    assert stats.recovered == 1
    assert json.dumps(stats.conversions) == json.dumps({"converted": 1})
    store.close()
