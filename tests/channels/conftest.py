import email
import email.policy
import socket

import pytest

from cartrescue.models import Content, Message
from cartrescue_testing.contracts import Delivery


def make_message(kind="sms", to="+4791234567", *, key=None, unsubscribe_url=None, **content):
    """A rendered message as the engine hands it to a channel."""
    key = key or f"ch_1001:1:{kind}"
    content.setdefault(
        "text", "Your cart at Nordlys Design is waiting: https://nordlys.example/r/Ab3"
    )
    if kind == "email":
        content.setdefault("subject", "You left something behind")
        content.setdefault("html", "<p>Your cart is waiting</p>")
    if kind == "whatsapp":
        content.setdefault("template", "cart_reminder_1")
        content.setdefault("language", "nb")
        content.setdefault("parameters", ("Kari", "Nordlys Design"))
        content.setdefault("button_parameter", "Ab3")
    return Message(
        key=key,
        channel=kind,
        to=to,
        checkout_id=key.split(":")[0],
        step=1,
        locale="nb",
        content=Content(**content),
        unsubscribe_url=unsubscribe_url,
    )


@pytest.fixture
def message():
    return make_message


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Mailbox:
    """An aiosmtpd handler that keeps what it accepts, as a real server would deliver it."""

    def __init__(self):
        self.received = []
        self.refuse = set()
        self.drop_data = False
        self.reject_data = None
        self.connections = 0
        self.throttle = 0

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        self.connections += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.throttle:
            self.throttle -= 1
            return "451 4.7.1 Too many messages, slow down"
        if address in self.refuse:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.drop_data:
            server.transport.close()
            return "250 OK"
        if self.reject_data:
            return self.reject_data
        self.received.append(
            (envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content)
        )
        return "250 2.0.0 Ok: queued as 4Bx"

    # what ChannelContract asks of a fake
    def deliveries(self):
        return [
            Delivery(to=rcpt[0], body=mail.get_body(("plain",)).get_content())
            for (_, rcpt, _), mail in zip(self.received, self.messages(), strict=True)
        ]

    def reject(self, to):
        self.refuse.add(to)

    def throttle_next(self):
        self.throttle += 1

    def messages(self):
        return [
            email.message_from_bytes(raw, policy=email.policy.default)
            for _, _, raw in self.received
        ]


@pytest.fixture(autouse=True)
def _no_contact_or_secret_in_logs(scanned_logs):
    """Every channel test fails if cartrescue logs a watched contact or secret."""
    return scanned_logs
