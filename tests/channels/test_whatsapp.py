import json

import pytest
import responses

from cartrescue.channels.whatsapp import WhatsAppCloud
from cartrescue.errors import (
    ConfigError,
    PermanentSendError,
    SendOutcomeUnknown,
    TransientSendError,
)
from tests.channels.conftest import make_message
from tests.conftest import load_fixture

TOKEN = "EAAG-whatsapp-access-token"
URL = "https://graph.facebook.com/v23.0/106540352242922/messages"


@pytest.fixture
def whatsapp(waits):
    return WhatsAppCloud(
        phone_number_id="106540352242922",
        access_token=TOKEN,
        sleep=waits.append,
        rate_limit=0,
    )


def wa_message(**kw):
    kw.setdefault("to", "+4791234567")
    return make_message("whatsapp", **kw)


@responses.activate
def test_sends_the_documented_template_message(whatsapp):
    responses.post(URL, json=load_fixture("whatsapp/sent.json"))
    receipt = whatsapp.send(wa_message(key="ch_1001:1:whatsapp"))
    assert receipt.provider_id == "wamid.HBgLNDc5MTIzNDU2NxUCABEYEjQ4NUE2QjQ5RDZCRjlEMDc1QQA="
    assert receipt.detail == "accepted"
    (call,) = responses.calls
    assert call.request.url == URL
    assert call.request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert json.loads(call.request.body) == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "4791234567",
        "type": "template",
        "biz_opaque_callback_data": "ch_1001:1:whatsapp",
        "template": {
            "name": "cart_reminder_1",
            "language": {"code": "nb"},
            "components": [
                {
                    "type": "body",
                    "parameters": [
                        {"type": "text", "text": "Kari"},
                        {"type": "text", "text": "Nordlys Design"},
                    ],
                },
                {
                    "type": "button",
                    "sub_type": "url",
                    "index": "0",
                    "parameters": [{"type": "text", "text": "Ab3"}],
                },
            ],
        },
    }


@responses.activate
def test_a_template_without_parameters_has_no_components(whatsapp):
    responses.post(URL, json=load_fixture("whatsapp/sent.json"))
    whatsapp.send(wa_message(parameters=(), button_parameter=None, language="en-US"))
    template = json.loads(responses.calls[0].request.body)["template"]
    assert template == {"name": "cart_reminder_1", "language": {"code": "en_US"}}


@pytest.mark.parametrize(
    ("code", "opted_out", "skip_step"),
    [(131047, False, False), (131026, False, False), (131049, False, True), (131050, True, False)],
)
@responses.activate
def test_permanent_errors(whatsapp, code, opted_out, skip_step):
    responses.post(URL, json=load_fixture(f"whatsapp/error_{code}.json"), status=400)
    with pytest.raises(PermanentSendError) as info:
        whatsapp.send(wa_message())
    assert info.value.code == code
    assert info.value.opted_out is opted_out
    assert info.value.skip_step is skip_step
    assert len(responses.calls) == 1


@responses.activate
def test_rate_limit_130429_is_retried_then_succeeds(whatsapp, waits):
    responses.post(URL, json=load_fixture("whatsapp/error_130429.json"), status=400)
    responses.post(URL, json=load_fixture("whatsapp/sent.json"))
    whatsapp.send(wa_message())
    assert len(responses.calls) == 2
    assert len(waits) == 1


@responses.activate
def test_expired_token_is_transient_and_hidden(whatsapp):
    responses.post(URL, json=load_fixture("whatsapp/error_190.json"), status=401)
    with pytest.raises(TransientSendError) as info:
        whatsapp.send(wa_message())
    assert not isinstance(info.value, SendOutcomeUnknown)
    assert TOKEN not in str(info.value)
    assert "access_token" in str(info.value)


@responses.activate
def test_unknown_server_error_is_unknown_and_not_resent(whatsapp):
    responses.post(URL, json=load_fixture("whatsapp/error_131000.json"), status=500)
    with pytest.raises(SendOutcomeUnknown):
        whatsapp.send(wa_message())
    assert len(responses.calls) == 1


def test_marketing_templates_to_us_numbers_are_refused_without_a_request(whatsapp):
    with responses.RequestsMock() as mock:
        with pytest.raises(PermanentSendError, match="US"):
            whatsapp.send(wa_message(to="+12025550123"))
        assert len(mock.calls) == 0


@responses.activate
def test_canadian_plus_one_numbers_are_not_us(whatsapp):
    responses.post(URL, json=load_fixture("whatsapp/sent.json"))
    whatsapp.send(wa_message(to="+14165550123"))
    assert len(responses.calls) == 1


@responses.activate
def test_utility_templates_may_go_to_us_numbers():
    channel = WhatsAppCloud(
        phone_number_id="106540352242922", access_token=TOKEN, template_category="utility"
    )
    responses.post(URL, json=load_fixture("whatsapp/sent.json"))
    channel.send(wa_message(to="+12025550123"))
    assert len(responses.calls) == 1


def test_a_message_without_template_is_refused(whatsapp):
    with pytest.raises(PermanentSendError, match="template"):
        whatsapp.send(wa_message(template=None))


@responses.activate
def test_200_without_message_id_is_unknown(whatsapp):
    responses.post(URL, json={"messaging_product": "whatsapp"})
    with pytest.raises(SendOutcomeUnknown):
        whatsapp.send(wa_message())


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"phone_number_id": "+4791234567"}, "phone_number_id"),
        ({"api_version": "23.0"}, "api_version"),
        ({"template_category": "promo"}, "template_category"),
    ],
)
def test_bad_settings_name_the_key(options, key):
    settings = {"phone_number_id": "106540352242922", "access_token": TOKEN, **options}
    with pytest.raises(ConfigError) as info:
        WhatsAppCloud(**settings)
    assert info.value.key == key


@responses.activate
def test_doctor_check_fetches_the_phone_number(whatsapp):
    phone = "https://graph.facebook.com/v23.0/106540352242922"
    responses.get(
        phone,
        json={
            "verified_name": "Nordlys Design",
            "display_phone_number": "+47 59 44 00 00",
            "id": "106540352242922",
            "quality_rating": "GREEN",
        },
    )
    responses.get(phone, json=load_fixture("whatsapp/error_190.json"), status=401)
    assert whatsapp.check() == []
    (problem,) = whatsapp.check()
    assert problem.area == "channels.whatsapp"
    assert TOKEN not in problem.message
    assert responses.calls[0].request.headers["Authorization"] == f"Bearer {TOKEN}"


@responses.activate
def test_an_image_header_goes_first_as_a_link(whatsapp):
    image = "https://cdn.shop.example/products/blanket.jpg"
    responses.post(URL, json=load_fixture("whatsapp/sent.json"))
    whatsapp.send(wa_message())
    whatsapp.send(wa_message(header_image=image))
    plain, with_image = (json.loads(c.request.body)["template"] for c in responses.calls)
    header, *rest = with_image["components"]
    assert header == {
        "type": "header",
        "parameters": [{"type": "image", "image": {"link": image}}],
    }
    assert rest == plain["components"]  # body and button as without a header
    assert [c["type"] for c in rest] == ["body", "button"]


@responses.activate
def test_an_image_header_that_is_not_https_is_refused_before_sending(whatsapp):
    with pytest.raises(PermanentSendError, match="https"):
        whatsapp.send(wa_message(header_image="http://cdn.shop.example/a.jpg"))
    assert len(responses.calls) == 0


@responses.activate
def test_a_free_form_text_answers_inside_the_window(whatsapp):
    # a free-form answer is not a marketing template: a US number may get it
    responses.post(URL, json=load_fixture("whatsapp/sent.json"))
    message = make_message(
        "whatsapp", to="+12025550123", key="c1:acknowledgement:ab", text="Thanks!", free_form=True
    )
    whatsapp.send(message)
    (call,) = responses.calls
    assert json.loads(call.request.body) == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "12025550123",
        "type": "text",
        "text": {"preview_url": False, "body": "Thanks!"},
        "biz_opaque_callback_data": "c1:acknowledgement:ab",
    }


@pytest.mark.parametrize("text", ["  ", "x" * 4097])
def test_a_free_form_text_must_hold_1_to_4096_characters(whatsapp, text):
    with responses.RequestsMock() as mock:
        with pytest.raises(PermanentSendError, match="4096"):
            whatsapp.send(make_message("whatsapp", text=text, free_form=True))
        assert len(mock.calls) == 0
