from urllib.parse import parse_qs

import pytest
import responses

from cartrescue.channels.vonage import VonageSMS
from cartrescue.errors import (
    ConfigError,
    PermanentSendError,
    SendOutcomeUnknown,
    TransientSendError,
)
from tests.channels.conftest import make_message
from tests.conftest import load_fixture

URL = "https://rest.nexmo.com/sms/json"
SECRET = "vonage-api-secret-0123"


@pytest.fixture
def vonage(waits):
    return VonageSMS(
        api_key="a1b2c3d4",
        api_secret=SECRET,
        from_number="NordlysDes",
        status_callback="https://shop.example/vonage/dlr",
        sleep=waits.append,
        rate_limit=0,
    )


def form(call):
    return {k: v[0] for k, v in parse_qs(call.request.body).items()}


@responses.activate
def test_sends_the_documented_form_and_reads_the_message_id(vonage):
    responses.post(URL, json=load_fixture("vonage/sent.json"))
    receipt = vonage.send(make_message(to="+4791234567", key="ch_1001:1:sms"))
    assert receipt.provider == "vonage"
    assert receipt.provider_id == "0C000000217B7F02"
    (call,) = responses.calls
    assert call.request.url == URL
    assert form(call) == {
        "api_key": "a1b2c3d4",
        "api_secret": SECRET,
        "from": "NordlysDes",
        "to": "4791234567",
        "text": "Your cart at Nordlys Design is waiting: https://nordlys.example/r/Ab3",
        "type": "text",
        "client-ref": "ch_1001:1:sms",
        "callback": "https://shop.example/vonage/dlr",
    }


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("Hei Kari, handlekurven venter på deg €", "text"),
        ("Hei Kari 🛒 handlekurven venter", "unicode"),
        ("Привет, ваша корзина ждёт", "unicode"),
    ],
)
@responses.activate
def test_ucs2_text_is_sent_as_unicode(vonage, text, kind):
    responses.post(URL, json=load_fixture("vonage/sent.json"))
    vonage.send(make_message(text=text))
    sent = form(responses.calls[0])
    assert sent["type"] == kind
    assert sent["text"] == text


@responses.activate
def test_throttled_status_is_retried_then_succeeds(vonage, waits):
    responses.post(URL, json=load_fixture("vonage/throttled.json"))
    responses.post(URL, json=load_fixture("vonage/sent.json"))
    assert vonage.send(make_message()).provider_id == "0C000000217B7F02"
    assert len(responses.calls) == 2
    assert len(waits) == 1


@responses.activate
def test_invalid_number_is_permanent_with_the_status_code(vonage):
    responses.post(URL, json=load_fixture("vonage/invalid.json"))
    with pytest.raises(PermanentSendError) as info:
        vonage.send(make_message(to="+4790000001"))
    assert info.value.code == "3"
    assert info.value.opted_out is False
    assert "4790000001" not in str(info.value) + info.value.snippet
    assert len(responses.calls) == 1


@responses.activate
def test_barred_number_is_an_opt_out(vonage):
    responses.post(URL, json=load_fixture("vonage/barred.json"))
    with pytest.raises(PermanentSendError) as info:
        vonage.send(make_message())
    assert info.value.opted_out is True


@responses.activate
def test_internal_error_is_unknown_and_not_resent(vonage):
    responses.post(URL, json=load_fixture("vonage/internal.json"))
    with pytest.raises(SendOutcomeUnknown):
        vonage.send(make_message())
    assert len(responses.calls) == 1


@responses.activate
def test_partial_acceptance_is_unknown(vonage):
    responses.post(URL, json=load_fixture("vonage/partial.json"))
    with pytest.raises(SendOutcomeUnknown, match="some parts"):
        vonage.send(make_message())


@responses.activate
def test_bad_credentials_are_transient_and_do_not_show_the_secret(vonage):
    responses.post(URL, json=load_fixture("vonage/bad_credentials.json"))
    with pytest.raises(TransientSendError) as info:
        vonage.send(make_message())
    assert not isinstance(info.value, SendOutcomeUnknown)
    assert SECRET not in str(info.value)
    assert "check api_key and api_secret" in str(info.value)


@responses.activate
def test_http_429_is_retried(vonage, waits):
    responses.post(URL, status=429, headers={"Retry-After": "1"})
    responses.post(URL, json=load_fixture("vonage/sent.json"))
    vonage.send(make_message())
    assert waits == [1.0]


def test_missing_secret_names_the_key():
    with pytest.raises(ConfigError) as info:
        VonageSMS(api_key="k", api_secret=" ", from_number="Shop")
    assert info.value.key == "api_secret"
