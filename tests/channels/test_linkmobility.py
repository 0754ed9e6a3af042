import base64
import json

import pytest
import responses

from cartrescue.channels.linkmobility import LinkMobilitySMS
from cartrescue.errors import (
    ConfigError,
    PermanentSendError,
    TransientSendError,
)
from tests.channels.conftest import make_message
from tests.conftest import load_fixture

BASE = "https://n-eu.linkmobility.io"
URL = f"{BASE}/sms/send"


@pytest.fixture
def link(waits):
    return LinkMobilitySMS(
        base_url=BASE,
        username="nordlys",
        password="link-password-0123",
        platform_id="COMMON_API",
        platform_partner_id="12345",
        from_number="Nordlys",
        delivery_report_gate="gate-7",
        sleep=waits.append,
        rate_limit=0,
    )


@responses.activate
def test_sends_the_documented_json_with_basic_auth(link):
    responses.post(URL, json=load_fixture("linkmobility/sent.json"))
    receipt = link.send(make_message(to="+4791234567", key="ch_1001:1:sms"))
    assert receipt.provider_id == "Cu0bPyCf8ruAAAFnSqcKADEh"
    assert receipt.detail == "Queued"
    (call,) = responses.calls
    assert call.request.url == URL
    auth = base64.b64encode(b"nordlys:link-password-0123").decode()
    assert call.request.headers["Authorization"] == f"Basic {auth}"
    assert json.loads(call.request.body) == {
        "source": "Nordlys",
        "sourceTON": "ALPHANUMERIC",
        "destination": "+4791234567",
        "destinationTON": "MSISDN",
        "userData": "Your cart at Nordlys Design is waiting: https://nordlys.example/r/Ab3",
        "platformId": "COMMON_API",
        "platformPartnerId": "12345",
        "refId": "ch_1001:1:sms",
        "useDeliveryReport": True,
        "deliveryReportGates": ["gate-7"],
    }


@pytest.mark.parametrize(
    ("source", "ton"),
    [("+4759440000", "MSISDN"), ("2222", "SHORTNUMBER"), ("Nordlys", "ALPHANUMERIC")],
)
def test_source_type_of_number_follows_the_sender(source, ton):
    channel = LinkMobilitySMS(
        base_url=BASE,
        username="u",
        password="p",
        platform_id="p",
        platform_partner_id="1",
        from_number=source,
    )
    assert channel.source_ton == ton


def test_emoji_is_refused_before_any_request_with_a_clear_reason(link):
    with responses.RequestsMock() as mock:
        with pytest.raises(PermanentSendError) as info:
            link.send(make_message(text="Hei Kari! Handlekurven venter 🛒"))
        assert len(mock.calls) == 0
    assert "U+1F6D2" in str(info.value)
    assert "emoji" in str(info.value)


@responses.activate
def test_ucs2_without_emoji_is_sent(link):
    responses.post(URL, json=load_fixture("linkmobility/sent.json"))
    link.send(make_message(text="Привет, ваша корзина ждёт"))
    assert json.loads(responses.calls[0].request.body)["userData"] == "Привет, ваша корзина ждёт"


@responses.activate
def test_invalid_destination_is_permanent(link):
    responses.post(URL, json=load_fixture("linkmobility/invalid_destination.json"), status=400)
    with pytest.raises(PermanentSendError) as info:
        link.send(make_message(to="+4790000001"))
    assert info.value.code == 2106
    assert "Number error" in str(info.value)


@responses.activate
def test_throttling_is_retried_then_succeeds(link, waits):
    responses.post(URL, json=load_fixture("linkmobility/throttled.json"), status=400)
    responses.post(URL, json=load_fixture("linkmobility/sent.json"))
    assert link.send(make_message()).provider_id == "Cu0bPyCf8ruAAAFnSqcKADEh"
    assert len(waits) == 1


@responses.activate
def test_429_then_success(link, waits):
    responses.post(URL, status=429, body="Too Many Requests")
    responses.post(URL, json=load_fixture("linkmobility/sent.json"))
    link.send(make_message())
    assert len(responses.calls) == 2


@responses.activate
def test_refused_credentials_are_transient(link):
    responses.post(URL, status=401, body="")
    with pytest.raises(TransientSendError, match="username and password"):
        link.send(make_message())


def test_base_url_is_required():
    with pytest.raises(ConfigError) as info:
        LinkMobilitySMS(
            username="u", password="p", platform_id="p", platform_partner_id="1", from_number="X"
        )
    assert info.value.key == "base_url"
