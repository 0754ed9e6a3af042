"""Every built-in channel passes the conformance kit, each against a loopback fake that
answers as the provider's documentation says it does."""

import io
import json
import re

import pytest
from aiosmtpd.controller import Controller

from cartrescue.channels import (
    ConsoleChannel,
    LinkMobilitySMS,
    SMTPEmail,
    TwilioSMS,
    VonageSMS,
    WebhookChannel,
    WhatsAppCloud,
)
from cartrescue.errors import PermanentSendError
from cartrescue_testing import MemoryChannel
from cartrescue_testing.contracts import ChannelContract, Delivery, LoopbackFake, Reply
from tests.channels.conftest import Mailbox, free_port
from tests.conftest import load_fixture


def no_sleep(_seconds):
    """Retries in these tests need not wait."""


SID = "AC0123456789abcdef0123456789abcdef"
TWILIO_TOKEN = "tw-auth-token-0123456789abcdef"


def twilio_read(request):
    assert request.path == f"/2010-04-01/Accounts/{SID}/Messages.json"
    fields = request.form()
    return Delivery(to=fields["To"], body=fields["Body"])


class TestTwilioSMS(ChannelContract):
    @pytest.fixture
    def fake(self):
        with LoopbackFake(
            read=twilio_read,
            accepted=lambda r: Reply(201, load_fixture("twilio/message_created.json")),
            rejected=Reply(400, load_fixture("twilio/error_21211.json")),
            throttled=Reply(429, load_fixture("twilio/error_20429.json")),
        ) as fake:
            yield fake

    @pytest.fixture
    def channel(self, fake):
        return TwilioSMS(
            account_sid=SID,
            auth_token=TWILIO_TOKEN,
            from_number="+4759440000",
            base_url=fake.url,
            sleep=no_sleep,
        )

    @pytest.fixture
    def secrets(self):
        return [TWILIO_TOKEN]


class TestVonageSMS(ChannelContract):
    @pytest.fixture
    def fake(self):
        with LoopbackFake(
            read=lambda r: Delivery(to=r.form()["to"], body=r.form()["text"]),
            accepted=lambda r: Reply(200, load_fixture("vonage/sent.json")),
            rejected=Reply(200, load_fixture("vonage/invalid.json")),
            throttled=Reply(200, load_fixture("vonage/throttled.json")),
        ) as fake:
            yield fake

    @pytest.fixture
    def channel(self, fake):
        return VonageSMS(
            api_key="a1b2c3d4",
            api_secret="vonage-secret-0123",
            from_number="Nordlys",
            base_url=fake.url,
            sleep=no_sleep,
        )

    @pytest.fixture
    def secrets(self):
        return ["vonage-secret-0123"]


class TestLinkMobilitySMS(ChannelContract):
    @pytest.fixture
    def fake(self):
        with LoopbackFake(
            read=lambda r: Delivery(to=r.json()["destination"], body=r.json()["userData"]),
            accepted=lambda r: Reply(200, load_fixture("linkmobility/sent.json")),
            rejected=Reply(400, load_fixture("linkmobility/invalid_destination.json")),
            throttled=Reply(400, load_fixture("linkmobility/throttled.json")),
        ) as fake:
            yield fake

    @pytest.fixture
    def channel(self, fake):
        return LinkMobilitySMS(
            base_url=fake.url,
            username="nordlys",
            password="link-password-0123",
            platform_id="COMMON_API",
            platform_partner_id="12345",
            from_number="Nordlys",
            sleep=no_sleep,
        )

    @pytest.fixture
    def secrets(self):
        return ["link-password-0123"]


class TestWhatsAppCloud(ChannelContract):
    @pytest.fixture
    def fake(self):
        with LoopbackFake(
            read=lambda r: Delivery(to=r.json()["to"], body=json.dumps(r.json()["template"])),
            accepted=lambda r: Reply(200, load_fixture("whatsapp/sent.json")),
            rejected=Reply(400, load_fixture("whatsapp/error_131026.json")),
            throttled=Reply(400, load_fixture("whatsapp/error_130429.json")),
        ) as fake:
            yield fake

    @pytest.fixture
    def channel(self, fake):
        return WhatsAppCloud(
            phone_number_id="106540352242922",
            access_token="EAAG-secret-token",
            base_url=fake.url,
            sleep=no_sleep,
        )

    @pytest.fixture
    def secrets(self):
        return ["EAAG-secret-token"]


class TestWebhookChannel(ChannelContract):
    @pytest.fixture
    def fake(self):
        with LoopbackFake(
            read=lambda r: Delivery(to=r.json()["to"], body=r.text()),
            accepted=lambda r: Reply(200, {"id": r.header("Idempotency-Key")}),
            rejected=Reply(422, {"error": "invalid recipient"}),
            throttled=Reply(429, {"error": "slow down"}, headers={"Retry-After": "1"}),
        ) as fake:
            yield fake

    @pytest.fixture
    def channel(self, fake):
        return WebhookChannel(
            "email", url=fake.url + "/hook", secret="webhook-secret-0123", sleep=no_sleep
        )

    @pytest.fixture
    def secrets(self):
        return ["webhook-secret-0123"]


class TestSMTPEmail(ChannelContract):
    @pytest.fixture
    def fake(self):
        mailbox = Mailbox()
        controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
        controller.start()
        mailbox.port = controller.port
        yield mailbox
        controller.stop()

    @pytest.fixture
    def channel(self, fake):
        channel = SMTPEmail(
            host="127.0.0.1", port=fake.port, security="none", sender="hei@nordlys.example"
        )
        yield channel
        channel.close()


class MemoryFake:
    def __init__(self):
        self.refused = set()
        self.channel = None

    def fail(self, message):
        if message.to in self.refused:
            raise PermanentSendError("memory: refused", provider="memory")

    def deliveries(self):
        return [Delivery(to=m.to, body=m.text) for m in self.channel.sent]

    def reject(self, to):
        self.refused.add(to)

    def throttle_next(self):
        raise NotImplementedError


class TestMemoryChannel(ChannelContract):
    @pytest.fixture
    def fake(self):
        return MemoryFake()

    @pytest.fixture
    def channel(self, fake):
        fake.channel = MemoryChannel("email", fail=fake.fail)
        return fake.channel


class ConsoleFake:
    def __init__(self):
        self.stream = io.StringIO()

    def deliveries(self):
        blocks = re.split(r"^--- \w+ to ", self.stream.getvalue(), flags=re.M)[1:]
        return [Delivery(to=b.split(" ", 1)[0], body=b) for b in blocks]

    def reject(self, to):
        raise NotImplementedError

    def throttle_next(self):
        raise NotImplementedError


class TestConsoleChannel(ChannelContract):
    @pytest.fixture
    def fake(self):
        return ConsoleFake()

    @pytest.fixture
    def channel(self, fake):
        return ConsoleChannel("sms", stream=fake.stream, mask=False)
