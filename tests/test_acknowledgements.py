"""``[conversations] acknowledge``: a reply that is not a keyword gets one short answer in the
buyer's language, through the signed inbound webhooks, with the providers' APIs mocked at the
HTTP boundary: once per pause, never twice for a redelivery, never to an opted-out contact,
and on WhatsApp only inside the 24-hour window the reply opened."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from urllib.parse import parse_qs

import pytest
import responses

from cartrescue.channels.twilio import TwilioSMS
from cartrescue.channels.whatsapp import WhatsAppCloud
from cartrescue.clock import FrozenClock
from cartrescue.config import load_config
from cartrescue.conversations import ACKNOWLEDGEMENTS, Conversations, acknowledgement
from cartrescue.errors import ConfigError
from cartrescue.sms import measure
from cartrescue.store.sqlite import SQLiteStore

from .conftest import NOON, load_fixture, make_checkout
from .test_conversations import app_for as conversations_app
from .test_web import post_whatsapp, send_sms_with_sid, whatsapp_text

PHONE = "+4791234567"
SID = "AC0123456789abcdef0123456789abcdef"
TWILIO_API = f"https://api.twilio.com/2010-04-01/Accounts/{SID}/Messages.json"
META_API = "https://graph.facebook.com/v23.0/106540352242922/messages"
TOKEN = "EAAG-secret-token"


@pytest.fixture
def clock():
    return FrozenClock(NOON + timedelta(hours=2))


@pytest.fixture
def store(clock):
    with SQLiteStore(":memory:") as s:
        s.start_at(NOON - timedelta(days=1))
        checkout = make_checkout("c1", locale="nb")
        s.upsert_checkout(checkout, clock())
        yield s


def sms_channel():
    return TwilioSMS(
        account_sid=SID, auth_token="tw-api-0123456789", from_number="+4759440000", rate_limit=0
    )


def whatsapp_channel():
    return WhatsAppCloud(phone_number_id="106540352242922", access_token=TOKEN, rate_limit=0)


def app_for(store, clock, **channels):
    conversations = Conversations(store, clock=clock, acknowledge=channels, locale="en")
    return conversations_app(store, clock, conversations)


def twilio_sent():
    return [
        {k: v[0] for k, v in parse_qs(call.request.body).items()}
        for call in responses.calls
        if call.request.url == TWILIO_API
    ]


def whatsapp_sent():
    return [json.loads(c.request.body) for c in responses.calls if c.request.url == META_API]


def whatsapp_at(text, message_id, sent_at):
    body = json.loads(whatsapp_text(text, message_id))
    body["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"] = str(
        int(sent_at.timestamp())
    )
    return json.dumps(body).encode()


# -- the words ---------------------------------------------------------------------------------
@pytest.mark.parametrize("locale", sorted(ACKNOWLEDGEMENTS))
def test_each_locale_fits_one_sms_segment(locale):
    text = ACKNOWLEDGEMENTS[locale]
    assert measure(text).segments == 1
    assert text.strip() == text and text


def test_every_shipped_template_locale_has_an_acknowledgement():
    from importlib.resources import files

    shipped = {
        p.name.split(".", 1)[1].removesuffix(".j2")
        for p in files("cartrescue").joinpath("templates", "sms").iterdir()
        if p.name.startswith("1.")
    }
    assert shipped == set(ACKNOWLEDGEMENTS)


@pytest.mark.parametrize(
    ("locale", "default", "chosen"),
    [
        ("nb", "en", "nb"),
        ("nb_NO", "en", "nb"),
        ("no", "en", "nb"),
        ("pt-br", "en", "pt-BR"),
        ("pt-PT", "en", "pt-BR"),
        ("ar-EG", "en", "ar"),
        ("de", "fi", "fi"),
        (None, "hu", "hu"),
        ("de", "sv", "en"),
    ],
)
def test_the_buyers_locale_then_the_shops_then_english(locale, default, chosen):
    assert acknowledgement(locale, default) == (chosen, ACKNOWLEDGEMENTS[chosen])


# -- SMS ---------------------------------------------------------------------------------------
@responses.activate
def test_five_sms_replies_get_one_acknowledgement_in_the_buyers_language(store, clock):
    responses.post(TWILIO_API, json=load_fixture("twilio/message_created.json"), status=201)
    app = app_for(store, clock, sms=sms_channel())
    for n in range(5):
        assert send_sms_with_sid(app, f"Question {n}?", f"SM{n}")[0] == 200
        clock.advance(timedelta(minutes=1))
    assert send_sms_with_sid(app, "Question 0?", "SM0")[0] == 200  # Twilio redelivers
    assert twilio_sent() == [
        {"To": PHONE, "From": "+4759440000", "Body": ACKNOWLEDGEMENTS["nb"]},
    ]
    conversation = store.conversation("c1")
    assert [(e.direction, e.text) for e in conversation[:2]] == [
        ("in", "Question 0?"),
        ("out", ACKNOWLEDGEMENTS["nb"]),
    ]
    assert [e.direction for e in conversation[2:]] == ["in"] * 4
    assert conversation[1].source == "twilio"
    assert [kind for kind, _ in store.events()].count("acknowledged") == 1


@responses.activate
def test_a_reply_after_the_pause_ended_gets_a_new_acknowledgement(store, clock):
    responses.post(TWILIO_API, json=load_fixture("twilio/message_created.json"), status=201)
    app = app_for(store, clock, sms=sms_channel())
    send_sms_with_sid(app, "Blue?", "SM1")
    clock.advance(timedelta(hours=73))  # the 72 h pause is over
    send_sms_with_sid(app, "Still there?", "SM2")
    assert len(twilio_sent()) == 2


@responses.activate
def test_keywords_and_reasons_get_no_acknowledgement(store, clock):
    responses.post(TWILIO_API, json=load_fixture("twilio/message_created.json"), status=201)
    app = app_for(store, clock, sms=sms_channel())
    send_sms_with_sid(app, "1", "SM1")  # why they left: shipping cost
    send_sms_with_sid(app, "STOP", "SM2")
    assert twilio_sent() == []


@responses.activate
def test_an_opted_out_contact_gets_none_and_the_reason_is_logged(store, clock, caplog):
    responses.post(TWILIO_API, json=load_fixture("twilio/message_created.json"), status=201)
    store.add_optout(PHONE, "sms", "twilio", clock())
    app = app_for(store, clock, sms=sms_channel())
    with caplog.at_level(logging.INFO, logger="cartrescue.conversations"):
        send_sms_with_sid(app, "Why did I get this?", "SM1")
    assert twilio_sent() == []
    assert "opted out of sms" in caplog.text
    assert [e.direction for e in store.conversation("c1")] == ["in"]


@responses.activate
def test_the_acknowledgement_is_masked_in_logs(store, clock, log_scan):
    log_scan.watch(secrets=["tw-api-0123456789", TOKEN], contacts=[PHONE])
    responses.post(TWILIO_API, json=load_fixture("twilio/message_created.json"), status=201)
    send_sms_with_sid(app_for(store, clock, sms=sms_channel()), "Hei?", "SM1")
    assert len(twilio_sent()) == 1


@responses.activate
def test_a_refused_acknowledgement_is_counted_and_the_reply_stays(store, clock):
    responses.post(TWILIO_API, json=load_fixture("twilio/error_21211.json"), status=400)
    send_sms_with_sid(app_for(store, clock, sms=sms_channel()), "Hei?", "SM1")
    kinds = [kind for kind, _ in store.events()]
    assert "acknowledgement_failed" in kinds and "acknowledged" not in kinds
    assert [e.direction for e in store.conversation("c1")] == ["in"]


# -- WhatsApp ----------------------------------------------------------------------------------
@responses.activate
def test_whatsapp_answers_with_free_form_text_inside_the_window(store, clock):
    responses.post(META_API, json=load_fixture("whatsapp/sent.json"))
    app = app_for(store, clock, whatsapp=whatsapp_channel())
    body = whatsapp_at("Kan jeg hente den?", "wamid.in1", clock() - timedelta(minutes=1))
    for _ in range(2):  # Meta redelivers until it is answered 200
        assert post_whatsapp(app, body)[0] == 200
    (sent,) = whatsapp_sent()
    assert sent["type"] == "text"
    assert sent["text"] == {"preview_url": False, "body": ACKNOWLEDGEMENTS["nb"]}
    assert sent["to"] == PHONE.lstrip("+")
    assert "template" not in sent
    assert responses.calls[0].request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert [(e.direction, e.source) for e in store.conversation("c1")] == [
        ("in", "whatsapp"),
        ("out", "whatsapp"),
    ]


@responses.activate
def test_whatsapp_outside_the_window_would_need_a_template_so_none_is_sent(store, clock, caplog):
    responses.post(META_API, json=load_fixture("whatsapp/sent.json"))
    app = app_for(store, clock, whatsapp=whatsapp_channel())
    late = whatsapp_at("Hallo?", "wamid.late", clock() - timedelta(hours=25))  # a late retry
    with caplog.at_level(logging.INFO, logger="cartrescue.conversations"):
        assert post_whatsapp(app, late)[0] == 200
    assert whatsapp_sent() == []
    assert "24-hour customer-service window" in caplog.text
    assert store.paused_until("c1") is not None  # still a reply: recorded and paused


@responses.activate
def test_whatsapp_refusing_a_text_outside_its_window_is_recorded(store, clock):
    # Meta's own check (131047) when its window closed before ours did
    responses.post(META_API, json=load_fixture("whatsapp/error_131047.json"), status=400)
    app = app_for(store, clock, whatsapp=whatsapp_channel())
    post_whatsapp(app, whatsapp_at("Hallo?", "wamid.x", clock()))
    assert "acknowledgement_failed" in [kind for kind, _ in store.events()]
    assert [e.direction for e in store.conversation("c1")] == ["in"]


@responses.activate
def test_a_whatsapp_reply_with_only_sms_acknowledging_gets_none(store, clock):
    responses.post(TWILIO_API, json=load_fixture("twilio/message_created.json"), status=201)
    app = app_for(store, clock, sms=sms_channel())
    post_whatsapp(app, whatsapp_at("Hallo?", "wamid.y", clock()))
    assert twilio_sent() == []


@responses.activate
def test_arabic_buyer_gets_arabic(clock):
    responses.post(TWILIO_API, json=load_fixture("twilio/message_created.json"), status=201)
    with SQLiteStore(":memory:") as store:
        store.upsert_checkout(make_checkout("c1", locale="ar"), clock())
        send_sms_with_sid(app_for(store, clock, sms=sms_channel()), "مرحبا", "SM1")
    assert [m["Body"] for m in twilio_sent()] == [ACKNOWLEDGEMENTS["ar"]]


# -- configuration -----------------------------------------------------------------------------
def test_config_builds_the_acknowledging_channels(tmp_path):
    text = f"""
[shop]
locale = "fi"
[channels.sms]
type = "twilio"
account_sid = "{SID}"
auth_token_env = "TW"
from_number = "+4759440000"
[channels.email]
type = "console"
[conversations]
acknowledge = true
"""
    with SQLiteStore(":memory:") as store:
        built = load_config(None, text=text, env={"TW": "tw-api-0123456789"}).conversations(store)
        assert built is not None
        assert sorted(built.acknowledge) == ["sms"]
        assert built.locale == "fi"
        off = load_config(None, text=text.replace("true", "false"), env={"TW": "x" * 20})
        assert off.conversations(store).acknowledge == {}  # the default


def test_acknowledge_without_sms_or_whatsapp_is_a_clear_error():
    text = '[channels.email]\ntype = "console"\n[conversations]\nacknowledge = true\n'
    with SQLiteStore(":memory:") as store, pytest.raises(ConfigError) as caught:
        load_config(None, text=text, env={}).conversations(store)
    assert "conversations.acknowledge" in str(caught.value)
    assert "[channels.sms]" in str(caught.value)
