"""Replies that are not keywords: recorded on the checkout, deduplicated, masked in logs, and
holding the checkout's remaining reminders for the configured pause."""

import base64
import email
import email.policy
import hashlib
import hmac
import json
import socket
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO
from urllib.parse import urlencode

import pytest
from aiosmtpd.controller import Controller

from cartrescue.channels.email import SMTPEmail
from cartrescue.cli import main
from cartrescue.clock import FrozenClock
from cartrescue.config import load_config
from cartrescue.conversations import NEVER, Conversations, EmailForwarder, WebhookForwarder
from cartrescue.engine import Recovery
from cartrescue.errors import ConfigError
from cartrescue.reasons import reason_of
from cartrescue.stats import stats_document, stats_table
from cartrescue.store.sqlite import SQLiteStore
from cartrescue.web import make_app
from cartrescue_testing import MemoryChannel
from cartrescue_testing.loopback import LoopbackServer
from tests.conftest import NOON, make_checkout
from tests.test_engine import ListConnector
from tests.test_web import (
    APP_SECRET,
    PUBLIC,
    TWILIO_TOKEN,
    call,
    hand_signed_twilio,
    post_whatsapp,
    send_sms_with_sid,
    whatsapp_text,
)

PHONE = "+4791234567"


@pytest.fixture
def clock():
    return FrozenClock(NOON + timedelta(hours=1))


@pytest.fixture
def store():
    with SQLiteStore(":memory:") as s:
        s.start_at(NOON - timedelta(days=1))
        yield s


def app_for(store, clock, conversations=None):
    return make_app(
        store,
        public_url=PUBLIC,
        twilio_auth_token=TWILIO_TOKEN,
        whatsapp_app_secret=APP_SECRET,
        clock=clock,
        conversations=conversations,
    )


def recovery(store, clock, *checkouts):
    channels = [MemoryChannel("sms"), MemoryChannel("email")]
    return Recovery(ListConnector(list(checkouts)), channels, store, clock=clock)


def test_a_reply_between_step_1_and_2_holds_the_rest_for_the_pause_then_resumes(store, clock):
    first = recovery(store, clock, make_checkout("c1"))
    assert first.run().counts["sent"] == 1  # step 1, at 1 h
    app = app_for(store, clock)
    clock.advance(timedelta(hours=2))
    assert send_sms_with_sid(app, "Does it come in blue?", "SM100")[0] == 200

    (entry,) = store.conversation("c1")
    assert (entry.text, entry.channel, entry.direction, entry.source) == (
        "Does it come in blue?",
        "sms",
        "in",
        "twilio",
    )
    assert store.paused_until("c1") == clock() + timedelta(hours=72)

    clock.advance(timedelta(hours=22))  # step 2 is due (24 h), the buyer is talking
    held = recovery(store, clock).run()
    assert held.counts["sent"] == 0
    assert held.counts["held: conversation"] == 1

    clock.advance(timedelta(hours=51))  # the pause is over: the sequence resumes
    resumed = recovery(store, clock).run()
    assert resumed.counts["sent"] == 1
    assert {e.step for e in store.outbox_for("c1")} == {1, 3}  # the latest due step
    assert store.skipped_steps("c1") == {2}


def test_never_resume_holds_for_good(store, clock):
    recovery(store, clock, make_checkout("c1")).run()
    app = app_for(store, clock, Conversations(store, pause=None, clock=clock))
    send_sms_with_sid(app, "I'll think about it", "SM1")
    assert store.paused_until("c1") == NEVER
    clock.advance(timedelta(days=2))
    report = recovery(store, clock).run()
    assert report.counts["sent"] == 0
    assert report.counts["held: conversation"] == 1


def test_the_same_delivery_twice_makes_one_entry(store, clock):
    store.upsert_checkout(make_checkout("c1"), clock())
    app = app_for(store, clock)
    send_sms_with_sid(app, "Is shipping free?", "SM7")
    send_sms_with_sid(app, "Is shipping free?", "SM7")
    assert [e.text for e in store.conversation("c1")] == ["Is shipping free?"]
    assert [kind for kind, _ in store.events()].count("reply") == 1


def test_a_whatsapp_text_is_a_reply_and_a_retry_changes_nothing(store, clock):
    store.upsert_checkout(make_checkout("c1"), clock())
    app = app_for(store, clock)
    for _ in range(2):
        assert post_whatsapp(app, whatsapp_text("Can I pay by invoice?", "wamid.9"))[0] == 200
    (entry,) = store.conversation("c1")
    assert (entry.text, entry.channel, entry.source) == (
        "Can I pay by invoice?",
        "whatsapp",
        "whatsapp",
    )
    assert store.paused_until("c1") is not None


def test_a_keyword_is_not_a_reply_and_the_latest_open_checkout_gets_it(store, clock):
    store.upsert_checkout(make_checkout("old", abandoned_at=NOON - timedelta(days=3)), clock())
    store.upsert_checkout(make_checkout("new"), clock())
    app = app_for(store, clock)
    send_sms_with_sid(app, "STOP", "SM1")
    assert store.conversation("new") == []
    send_sms_with_sid(app, "Hello?", "SM2")
    assert [e.text for e in store.conversation("new")] == ["Hello?"]
    assert store.conversation("old") == []


def test_a_reply_from_a_stranger_is_answered_and_recorded_nowhere(store, clock):
    app = app_for(store, clock)
    assert send_sms_with_sid(app, "who is this?", "SM1")[0] == 200
    assert [kind for kind, _ in store.events()] == []


def test_replies_are_masked_in_logs_and_forgotten_with_the_contact(store, clock, log_scan):
    log_scan.watch(contacts=[PHONE])
    store.upsert_checkout(make_checkout("c1"), clock())
    send_sms_with_sid(app_for(store, clock), "my number is +4791234567, call me", "SM1")
    assert not any("call me" in line for line in log_scan.lines())
    store.forget(PHONE)
    assert store.conversation("c1") == []
    assert store.paused_until("c1") is None


def test_config_reads_the_pause(tmp_path):
    path = tmp_path / "cartrescue.toml"
    path.write_text('[conversations]\npause = "never"\n')
    config = load_config(path, env={})
    with SQLiteStore(":memory:") as store:
        conversations = config.conversations(store)
        assert conversations is not None and conversations.pause is None
    path.write_text('[conversations]\npause = "36h"\n')
    with SQLiteStore(":memory:") as store:
        conversations = load_config(path, env={}).conversations(store)
        assert conversations is not None and conversations.pause == timedelta(hours=36)
    path.write_text('[conversations]\npause = "sometimes"\n')
    with pytest.raises(ConfigError, match=r"conversations\.pause"):
        load_config(path, env={})


# -- forwarding to the shop ----------------------------------------------------------------
SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


def verify_standard_webhook(secret, headers, body, now):
    """The receiver's check, written from the Standard Webhooks specification: the key is the
    base64 after ``whsec_``; the signed content is ``id.timestamp.body``; the header holds
    space-separated ``v1,<base64>`` signatures; the timestamp must be within five minutes."""
    key = base64.b64decode(secret.split("_", 1)[1])
    msg_id, timestamp = headers["webhook-id"], headers["webhook-timestamp"]
    if abs(now - int(timestamp)) > 300:
        return False
    content = f"{msg_id}.{timestamp}.{body.decode()}".encode()
    expected = base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
    for signature in headers["webhook-signature"].split(" "):
        version, _, value = signature.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            return True
    return False


class Receiver(ThreadingHTTPServer):
    received: list


class ReceiverHandler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        headers = {k.lower(): v for k, v in self.headers.items()}
        ok = verify_standard_webhook(SECRET, headers, body, time.time())
        self.server.received.append((ok, headers, json.loads(body)))
        self.send_response(204 if ok else 401)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    server = LoopbackServer(ReceiverHandler, server_class=Receiver)
    server.server.received = []
    yield server
    server.stop()


class Mailbox:
    def __init__(self):
        self.received = []

    async def handle_DATA(self, server, session, envelope):
        self.received.append((list(envelope.rcpt_tos), envelope.original_content))
        return "250 2.0.0 Ok: queued"


@pytest.fixture
def mailbox():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    box.port = port
    yield box
    controller.stop()


def test_a_reply_is_forwarded_signed_and_by_email_once(store, mailbox, receiver):
    clock = FrozenClock(NOON + timedelta(hours=2))
    real_now = FrozenClock(datetime.now(UTC))  # the receiver checks the timestamp against now
    recovery(store, clock, make_checkout("c1")).run()
    smtp = SMTPEmail(
        host="127.0.0.1", port=mailbox.port, security="none", sender="Shop <hei@shop.example>"
    )
    conversations = Conversations(
        store,
        forwarders=[
            WebhookForwarder(receiver.url + "/replies", SECRET, clock=real_now),
            EmailForwarder(smtp, "support@shop.example"),
        ],
        clock=clock,
    )
    app = app_for(store, clock, conversations)
    send_sms_with_sid(app, "Does it come in blue?", "SM42")
    send_sms_with_sid(app, "Does it come in blue?", "SM42")  # Twilio's retry
    smtp.close()

    ((ok, headers, payload),) = receiver.server.received
    assert ok, "the signature did not verify"
    assert headers["webhook-id"].startswith("msg_")
    assert payload["type"] == "conversation.reply"
    data = payload["data"]
    assert data["reply"] == "Does it come in blue?"
    assert data["channel"] == "sms"
    assert data["first_name"] == "Kari"
    assert data["contact"] != PHONE and data["contact"].endswith("67")
    assert data["items"] == [{"title": "Wool socks", "quantity": 1, "price": "499.00"}]
    assert (data["total"], data["currency"]) == ("499.00", "NOK")
    assert data["recovery_url"].startswith("https://shop.example/checkouts/c1/recover")
    assert [e["text"] for e in data["conversation"]] == ["Does it come in blue?"]

    ((rcpt, raw),) = mailbox.received
    assert rcpt == ["support@shop.example"]
    mail = email.message_from_bytes(raw, policy=email.policy.default)
    assert "Kari" in mail["Subject"]
    text = mail.get_body(("plain",)).get_content()
    assert "Does it come in blue?" in text and "Wool socks" in text
    assert [kind for kind, _ in store.events()].count("forwarded") == 2


def test_a_wrong_secret_does_not_verify(store, receiver):
    other = "whsec_" + base64.b64encode(b"another-secret-of-32-bytes-long!").decode()
    store.upsert_checkout(make_checkout("c1"), NOON)
    clock = FrozenClock(datetime.now(UTC))
    conversations = Conversations(
        store, forwarders=[WebhookForwarder(receiver.url, other, clock=clock)], clock=clock
    )
    send_sms_with_sid(app_for(store, clock, conversations), "hello?", "SM1")
    ((ok, _, _),) = receiver.server.received
    assert not ok
    # the reply stays recorded; the failed forward is counted
    assert [e.text for e in store.conversation("c1")] == ["hello?"]
    assert [kind for kind, _ in store.events()].count("forward_failed") == 1


def test_forward_settings_are_checked(tmp_path):
    path = tmp_path / "cartrescue.toml"
    path.write_text('[conversations]\nwebhook_url = "https://shop.example/hooks"\n')
    with pytest.raises(ConfigError, match="webhook_url"):
        load_config(path, env={})
    path.write_text('[conversations]\nemail_to = "support@shop.example"\n')
    with SQLiteStore(":memory:") as store, pytest.raises(ConfigError, match="email"):
        load_config(path, env={}).conversations(store)
    path.write_text(
        '[conversations]\nwebhook_url = "https://shop.example/hooks"\n'
        'webhook_secret_env = "HOOK_SECRET"\n'
    )
    with SQLiteStore(":memory:") as store:
        built = load_config(path, env={"HOOK_SECRET": SECRET}).conversations(store)
        assert built is not None
        assert [type(f).__name__ for f in built.forwarders] == ["WebhookForwarder"]


# -- quick replies and why they left -------------------------------------------------------
def whatsapp_message(message):
    message = {"from": "4791234567", **message}
    value = {"messaging_product": "whatsapp", "messages": [message]}
    payload = {"object": "whatsapp_business_account", "entry": [{"changes": [{"value": value}]}]}
    return json.dumps(payload).encode()


def test_not_interested_ends_the_sequence_without_an_opt_out(store, clock):
    recovery(store, clock, make_checkout("c1")).run()
    app = app_for(store, clock)
    button = {"payload": "NOT_INTERESTED", "text": "Ikke interessert"}
    body = whatsapp_message({"id": "wamid.b1", "type": "button", "button": button})
    assert post_whatsapp(app, body)[0] == 200
    assert store.optouts_for([PHONE]) == set()
    assert store.checkout_status("c1") == "done"
    clock.advance(timedelta(hours=23))
    assert recovery(store, clock).run().counts["sent"] == 0
    assert [e.text for e in store.conversation("c1")] == ["Ikke interessert"]


def test_i_have_a_question_forwards_and_pauses(store, clock):
    store.upsert_checkout(make_checkout("c1"), clock())
    app = app_for(store, clock)
    reply = {"id": "QUESTION", "title": "I have a question"}
    interactive = {"type": "button_reply", "button_reply": reply}
    body = whatsapp_message({"id": "wamid.q1", "type": "interactive", "interactive": interactive})
    post_whatsapp(app, body)
    assert store.paused_until("c1") is not None
    assert store.checkout_status("c1") == "open"
    assert [kind for kind, _ in store.events()] == ["reply"]


def test_why_they_left_by_list_reply_and_by_sms_digit_shows_in_stats(store, clock, tmp_path):
    store.upsert_checkout(make_checkout("c1"), clock())
    store.upsert_checkout(make_checkout("c2", phone="+4798765432"), clock())
    app = app_for(store, clock)
    row = {"id": "shipping_cost", "title": "Frakten koster for mye"}
    interactive = {"type": "list_reply", "list_reply": row}
    body = whatsapp_message({"id": "wamid.l1", "type": "interactive", "interactive": interactive})
    post_whatsapp(app, body)
    assert store.abandonment_reason("c1") == "shipping_cost"
    assert store.paused_until("c1") is None  # an answer, not a question
    body = urlencode({"Body": " 2 ", "From": "+4798765432", "MessageSid": "SM9"}).encode()
    signature = hand_signed_twilio(f"{PUBLIC}/twilio/sms", body).decode()
    call(app, "POST", "/twilio/sms", body, {"X-Twilio-Signature": signature})
    assert store.abandonment_reason("c2") == "price"
    assert store.reason_counts() == {"shipping_cost": 1, "price": 1}

    stats = store.stats(clock())
    table = stats_table(stats, now=clock(), locale="en", stale=None, reasons=store.reason_counts())
    assert "Why they left" in table and "shipping cost" in table
    document = stats_document(stats, now=clock(), stale=None, reasons=store.reason_counts())
    assert document["abandonment_reasons"] == {"price": 1, "shipping_cost": 1}


def test_stats_command_shows_the_reasons(tmp_path):
    path = tmp_path / "cartrescue.toml"
    db = tmp_path / "cartrescue.db"
    path.write_text(f'[store]\npath = "{db}"\n')
    with SQLiteStore(str(db)) as store:
        store.upsert_checkout(make_checkout("c1"), NOON)
        store.record_reason("c1", "delivery_time", NOON)
    out = StringIO()
    main(["stats", "--json", "--config", str(path)], out=out)
    assert json.loads(out.getvalue())["abandonment_reasons"] == {"delivery_time": 1}


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("1", "shipping_cost"),
        ("5.", "delivery_time"),
        ("6", None),
        ("12", None),
        ("other", "other"),
    ],
)
def test_reason_of(text, reason):
    assert reason_of(text) == reason


def test_the_demo_shows_a_conversation():
    out = StringIO()
    assert main(["demo"], out=out) == 0
    text = out.getvalue()
    assert "Forwarded to the shop" in text
    assert '"reply": "Can I pick it up in the shop?"' in text
    assert "held: conversation" in text
    # acknowledged once, in the buyer's language, and the forward shows it
    assert text.count("Takk, vi svarer deg snart.") == 2
    assert "+4791234567" not in text.split("A reply:")[1]  # the forward masks the contact


def test_a_whatsapp_reply_with_a_lone_surrogate_is_kept_readable(store, clock):
    store.upsert_checkout(make_checkout("c1"), clock())
    body = whatsapp_text("hei \ud83d", "wamid.s1")
    assert post_whatsapp(app_for(store, clock), body)[0] == 200
    assert [e.text for e in store.conversation("c1")] == ["hei ?"]
