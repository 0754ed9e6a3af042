"""Vonage's inbound SMS: signed as Vonage documents, deduplicated, keywords and replies."""

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest

from cartrescue.channels.vonage_inbound import vonage_signature
from cartrescue.clock import FrozenClock
from cartrescue.errors import ConfigError
from cartrescue.store.sqlite import SQLiteStore
from cartrescue.web import make_app
from cartrescue.web_settings import web_settings
from tests.conftest import make_checkout
from tests.test_web import PUBLIC, call

SECRET = "vonage-signature-secret-0123"
NOW = datetime(2026, 3, 11, 13, 0, tzinfo=UTC)
PHONE = "+4791234567"


def vonage_signed(params, secret=SECRET, method="md5hash"):
    """A fake Vonage: signs as developer.vonage.com "Signing Messages" describes, written
    here apart from the code under test."""
    params = {**params, "timestamp": str(int(NOW.timestamp())), "nonce": "n-123"}
    text = "".join(
        "&" + name + "=" + params[name].replace("&", "_").replace("=", "_")
        for name in sorted(params)
    )
    if method == "md5hash":
        sig = hashlib.md5((text + secret).encode(), usedforsecurity=False).hexdigest()
    else:
        sig = hmac.new(secret.encode(), text.encode(), getattr(hashlib, method)).hexdigest()
    return {**params, "sig": sig.upper() if method != "md5hash" else sig}


def inbound(text, message_id="0C000000217B7F02", msisdn="4791234567"):
    return {
        "msisdn": msisdn,
        "to": "4790000000",
        "messageId": message_id,
        "text": text,
        "type": "text",
        "keyword": text.split()[0].upper() if text.split() else "",
        "message-timestamp": "2026-03-11 13:00:00",
    }


@pytest.fixture
def store():
    with SQLiteStore(":memory:") as s:
        yield s


def app_for(store, method="md5hash", clock=None):
    return make_app(
        store,
        public_url=PUBLIC,
        vonage_signature_secret=SECRET,
        vonage_signature_method=method,
        clock=clock or FrozenClock(NOW),
    )


def post_form(app, params):
    return call(app, "POST", "/vonage/sms", urlencode(params).encode())


def test_the_documented_example():
    params = {"a": "1", "b": "2", "timestamp": "1461605396"}
    assert vonage_signature("secret", params) == "6af838ef94998832dbfc29020b564830"


def test_a_signed_stop_opts_out_and_start_opts_back_in(store):
    app = app_for(store)
    assert post_form(app, vonage_signed(inbound("Stopp", "M1")))[0] == 200
    assert store.optouts_for([PHONE]) == {"sms"}
    assert post_form(app, vonage_signed(inbound("START", "M2")))[0] == 200
    assert store.optouts_for([PHONE]) == set()


@pytest.mark.parametrize("method", ["sha256", "sha512", "md5", "sha1"])
def test_hmac_methods_and_a_json_body(store, method):
    app = app_for(store, method)
    body = json.dumps(vonage_signed(inbound("STOP", "M1"), method=method)).encode()
    assert call(app, "POST", "/vonage/sms", body)[0] == 200
    assert store.optouts_for([PHONE]) == {"sms"}


def test_a_get_with_the_query_string(store):
    app = app_for(store)
    query = urlencode(vonage_signed(inbound("STOP", "M1")))
    assert call(app, "GET", "/vonage/sms", query=query)[0] == 200
    assert store.optouts_for([PHONE]) == {"sms"}


@pytest.mark.parametrize(
    "tamper",
    [
        lambda p: {**p, "text": "START"},
        lambda p: {**p, "sig": "0" * 32},
        lambda p: {k: v for k, v in p.items() if k != "sig"},
        lambda p: vonage_signed(inbound("STOP"), secret="another-secret"),
    ],
)
def test_a_wrongly_signed_request_is_403_and_changes_nothing(store, tamper):
    app = app_for(store)
    assert post_form(app, tamper(vonage_signed(inbound("STOP"))))[0] == 403
    assert store.optouts_for([PHONE]) == set()
    assert store.events() == []


def test_a_stale_timestamp_is_refused(store):
    app = app_for(store, clock=FrozenClock(NOW + timedelta(minutes=6)))
    assert post_form(app, vonage_signed(inbound("STOP")))[0] == 403
    assert store.optouts_for([PHONE]) == set()


def test_a_reply_is_recorded_once_and_pauses(store):
    store.upsert_checkout(make_checkout("c1"), NOW)
    app = app_for(store)
    params = vonage_signed(inbound("Har dere denne i blått?", "M7"))
    assert post_form(app, params)[0] == 200
    assert post_form(app, params)[0] == 200  # Vonage resends until it gets 200
    (entry,) = store.conversation("c1")
    assert (entry.text, entry.source, entry.channel) == ("Har dere denne i blått?", "vonage", "sms")
    assert store.paused_until("c1") is not None


def test_a_digit_is_why_they_left(store):
    store.upsert_checkout(make_checkout("c1"), NOW)
    post_form(app_for(store), vonage_signed(inbound("3", "M8")))
    assert store.abandonment_reason("c1") == "just_browsing"


def test_web_settings_mount_vonage(store):
    table = {
        "public_url": PUBLIC,
        "vonage_signature_secret_env": "VONAGE_SIG",
        "vonage_signature_method": "sha256",
    }
    settings = web_settings({"web": table}, {"VONAGE_SIG": SECRET})
    assert settings.vonage_signature_method == "sha256"
    app = settings.app(store, clock=FrozenClock(NOW))
    body = json.dumps(vonage_signed(inbound("STOP"), method="sha256")).encode()
    assert call(app, "POST", "/vonage/sms", body)[0] == 200
    with pytest.raises(ConfigError, match="vonage_signature_method"):
        web_settings({"web": {**table, "vonage_signature_method": "crc32"}}, {"VONAGE_SIG": "x"})


def test_a_json_body_with_a_lone_surrogate_is_400(store):
    body = b'{"msisdn": "4791234567", "text": "\\ud83d", "sig": "x", "timestamp": "1"}'
    assert call(app_for(store), "POST", "/vonage/sms", body)[0] == 400
