"""Text no encoder accepts never becomes an "outcome unknown".

A lone surrogate (``"Kari\\ud83d"`` is valid JSON) cannot be encoded as UTF-8. The models clean
it away when a checkout is built; a channel handed such text anyway (a custom renderer, an
integrator's code) fails before anything leaves the machine, and says so as a permanent error
naming the provider, never as a bare ``UnicodeEncodeError`` or an unknown outcome."""

from __future__ import annotations

from datetime import timedelta

import pytest
from aiosmtpd.controller import Controller

from cartrescue import FrozenClock, Recovery, SQLiteStore, TemplateRenderer
from cartrescue.channels import SMTPEmail, TwilioSMS, WebhookChannel, WhatsAppCloud
from cartrescue.errors import PermanentSendError
from cartrescue.models import Receipt
from cartrescue.render import SUBJECT_LIMIT, WHATSAPP_PARAMETER_LIMIT
from cartrescue_testing.contracts import LoopbackProvider, Recorded, Reply
from tests.channels.conftest import Mailbox, free_port, make_message
from tests.conftest import NOON, load_fixture, make_checkout
from tests.test_engine import ListConnector

SID = "AC0123456789abcdef0123456789abcdef"
TOKEN = "tw-auth-token-0123456789abcdef"
LONE = "Kari\ud83d"


def _twilio_reply(_request: Recorded) -> Reply:
    return Reply(201, load_fixture("twilio/message_created.json"))


@pytest.fixture
def provider():
    with LoopbackProvider(_twilio_reply) as fake:
        yield fake


@pytest.fixture
def twilio(provider):
    return TwilioSMS(
        account_sid=SID,
        auth_token=TOKEN,
        from_number="+4759440000",
        base_url=provider.url,
        sleep=lambda _: None,
        rate_limit=0,
    )


def test_twilio_refuses_unencodable_text_permanently_and_sends_nothing(twilio, provider):
    with pytest.raises(PermanentSendError) as info:
        twilio.send(make_message(text=f"Hei {LONE}, handlekurven venter"))
    assert info.value.provider == "twilio"
    assert "twilio" in str(info.value)
    assert "nothing was sent" in str(info.value)
    assert "UnicodeEncodeError" in str(info.value)
    assert provider.requests == []
    # the channel still works for the next message
    assert isinstance(twilio.send(make_message()), Receipt)
    assert len(provider.requests) == 1


def test_a_batch_reports_the_unencodable_message_as_permanent_not_unknown(twilio, provider):
    results = twilio.send_batch(
        [make_message(key="c1:1:sms"), make_message(key="c2:1:sms", text=LONE), make_message()]
    )
    assert isinstance(results[0], Receipt)
    assert type(results[1]) is PermanentSendError, results[1]
    assert isinstance(results[2], Receipt)
    assert len(provider.requests) == 2


def test_a_header_that_cannot_be_encoded_is_permanent_before_any_request():
    with LoopbackProvider() as provider:
        channel = WhatsAppCloud(
            phone_number_id="106540352242922",
            access_token="EAAG-tøken-ŋ",  # not Latin-1: http.client cannot write the header
            base_url=provider.url,
            sleep=lambda _: None,
        )
        with pytest.raises(PermanentSendError, match="whatsapp"):
            channel.send(make_message("whatsapp"))
        assert provider.requests == []


def test_webhook_channel_refuses_unencodable_text_permanently():
    with LoopbackProvider() as provider:
        channel = WebhookChannel(
            "sms", url=provider.url + "/hook", secret="webhook-secret-0123", sleep=lambda _: None
        )
        with pytest.raises(PermanentSendError, match="webhook"):
            channel.send(make_message(text=LONE))
        assert provider.requests == []


@pytest.fixture
def mailbox():
    return Mailbox()


@pytest.fixture
def smtp(mailbox):
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    channel = SMTPEmail(
        host="127.0.0.1", port=controller.port, security="none", sender="hei@nordlys.example"
    )
    yield channel
    channel.close()
    controller.stop()


@pytest.mark.parametrize(
    "content",
    [
        {"subject": f"{LONE}, du har glemt noe"},
        {"text": f"Hei {LONE}"},
        {"html": f"<p>Hei {LONE}</p>"},
    ],
    ids=["subject", "text", "html"],
)
def test_smtp_refuses_unencodable_text_before_data(smtp, mailbox, content):
    with pytest.raises(PermanentSendError) as info:
        smtp.send(make_message("email", "kari@example.no", **content))
    assert info.value.provider == "smtp"
    assert mailbox.received == []
    smtp.send(make_message("email", "ola@example.no"))
    assert len(mailbox.received) == 1


def test_smtp_refuses_an_unencodable_recipient_before_data(smtp, mailbox):
    with pytest.raises(PermanentSendError, match="smtp"):
        smtp.send(make_message("email", f"{LONE}@example.no"))
    smtp.send(make_message("email", "ola@example.no"))
    assert [rcpt for _, rcpt, _ in mailbox.received] == [["ola@example.no"]]


def test_a_pass_sends_to_a_buyer_whose_name_cannot_be_encoded(provider, twilio, tmp_path):
    """End to end: the name from the shop holds a lone surrogate; the model cleans it, the
    message goes out through a real HTTP request and the key is "sent", not "unknown"."""
    (tmp_path / "sms").mkdir()
    (tmp_path / "sms" / "1.en.j2").write_text("{{ shop_name }}: Hi {{ first_name }}! {{ link }}")
    checkout = make_checkout("c1", first_name=LONE, email=None)
    with SQLiteStore(":memory:") as store:
        store.start_at(NOON - timedelta(days=1))
        recovery = Recovery(
            ListConnector([checkout]),
            [twilio],
            store,
            clock=FrozenClock(NOON + timedelta(hours=1)),
            renderer=TemplateRenderer([tmp_path]),
        )
        report = recovery.run()
        assert report.counts["sent"] == 1, report
        assert [e.status for e in store.outbox_for("c1")] == ["sent"]
    (request,) = provider.requests
    assert request.form()["Body"].startswith("list: Hi Kari! ")


def test_smtp_subject_header_is_one_line_of_at_most_the_limit(smtp, mailbox):
    subject = "Kari\r\nBcc: victim@example.org\r\n" + "x" * 100_000
    smtp.send(make_message("email", "kari@example.no", subject=subject))
    (mail,) = mailbox.messages()
    assert mail["Bcc"] is None
    shown = str(mail["Subject"])
    assert len(shown) <= SUBJECT_LIMIT
    assert shown.startswith("Kari Bcc: victim@example.org xxx")
    assert shown.endswith("…")
    (_, _, raw) = mailbox.received[0]
    assert len(raw) < 5_000


def test_whatsapp_refuses_a_parameter_over_the_limit_before_any_request():
    with LoopbackProvider() as provider:
        channel = WhatsAppCloud(
            phone_number_id="106540352242922",
            access_token="EAAG-secret-token",
            base_url=provider.url,
            sleep=lambda _: None,
        )
        too_long = "x" * (WHATSAPP_PARAMETER_LIMIT + 1)
        with pytest.raises(PermanentSendError, match="parameter 2 is 1025 characters"):
            channel.send(make_message("whatsapp", parameters=("Kari", too_long)))
        assert provider.requests == []
