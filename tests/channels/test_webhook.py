import hashlib
import hmac
import json

import pytest
import responses

from cartrescue.channels.webhook import WebhookChannel, verify_signature
from cartrescue.errors import ConfigError, PermanentSendError
from tests.channels.conftest import make_message

URL = "https://hooks.example/cartrescue"
SECRET = "whsec-0123456789abcdef"


@pytest.fixture
def webhook(waits):
    return WebhookChannel(
        "email", url=URL, secret=SECRET, now=lambda: 1_700_000_000.4, sleep=waits.append
    )


@responses.activate
def test_posts_the_message_as_signed_json(webhook):
    responses.post(URL, json={"id": "evt_42"})
    message = make_message(
        "email", "kari@example.no", unsubscribe_url="https://shop.example/unsubscribe/t"
    )
    receipt = webhook.send(message)
    assert receipt.provider_id == "evt_42"
    (call,) = responses.calls
    body = call.request.body
    headers = call.request.headers
    assert headers["Content-Type"] == "application/json"
    assert headers["Idempotency-Key"] == "ch_1001:1:email"
    assert headers["X-Cartrescue-Timestamp"] == "1700000000"
    expected = hmac.new(SECRET.encode(), b"1700000000." + body, hashlib.sha256).hexdigest()
    assert headers["X-Cartrescue-Signature"] == f"sha256={expected}"
    payload = json.loads(body)
    assert payload["key"] == "ch_1001:1:email"
    assert payload["to"] == "kari@example.no"
    assert payload["channel"] == "email"
    assert payload["content"]["subject"] == "You left something behind"
    assert payload["content"]["html"] == "<p>Your cart is waiting</p>"
    assert payload["unsubscribe_url"] == "https://shop.example/unsubscribe/t"


@responses.activate
def test_receiver_can_verify_the_signature(webhook):
    responses.post(URL, status=204)
    webhook.send(make_message("email", "kari@example.no"))
    request = responses.calls[0].request
    headers = dict(request.headers)
    assert verify_signature(SECRET, headers, request.body, now=lambda: 1_700_000_100)
    assert not verify_signature(
        "another-secret-value", headers, request.body, now=lambda: 1_700_000_100
    )
    assert not verify_signature(SECRET, headers, request.body + b" ", now=lambda: 1_700_000_100)
    assert not verify_signature(SECRET, headers, request.body, now=lambda: 1_700_001_000)


@responses.activate
def test_gone_is_permanent(webhook):
    responses.post(URL, status=410)
    with pytest.raises(PermanentSendError):
        webhook.send(make_message("email", "kari@example.no"))


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"url": "hooks.example", "secret": SECRET}, "url"),
        ({"url": URL, "secret": "short"}, "secret"),
        ({"url": URL, "secret": SECRET, "idempotent": "yes"}, "idempotent"),
    ],
)
def test_bad_settings_name_the_key(options, key):
    with pytest.raises(ConfigError) as info:
        WebhookChannel("sms", **options)
    assert info.value.key == key
