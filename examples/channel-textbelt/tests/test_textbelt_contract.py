"""An integrator's test: cartrescue's conformance kit against a loopback Textbelt."""

import pytest
from cartrescue_textbelt import TextbeltSMS

from cartrescue_testing.contracts import ChannelContract, Delivery, LoopbackFake, Reply

KEY = "textbelt-key-0123456789"


def read(request):
    assert request.path == "/text"
    fields = request.form()
    assert fields["key"] == KEY
    return Delivery(to=fields["phone"], body=fields["message"])


class TestTextbeltSMS(ChannelContract):
    @pytest.fixture
    def fake(self):
        with LoopbackFake(
            read=read,
            accepted=lambda r: Reply(
                200, {"success": True, "textId": "12345", "quotaRemaining": 40}
            ),
            rejected=Reply(200, {"success": False, "error": "Invalid phone number."}),
            throttled=Reply(429, {"success": False, "error": "Too many requests"}),
        ) as fake:
            yield fake

    @pytest.fixture
    def channel(self, fake):
        return TextbeltSMS(key=KEY, base_url=fake.url, rate_limit=0, sleep=lambda _: None)

    @pytest.fixture
    def secrets(self):
        return [KEY]


def test_out_of_quota_is_transient():
    from cartrescue.errors import TransientSendError
    from cartrescue_testing.contracts import LoopbackProvider, contract_message

    with LoopbackProvider() as provider:
        provider.push(Reply(200, {"success": False, "quotaRemaining": 0, "error": "Out of quota"}))
        channel = TextbeltSMS(key=KEY, base_url=provider.url, rate_limit=0)
        with pytest.raises(TransientSendError, match="quota"):
            channel.send(contract_message("sms", "+4791234567", "CRQUOTA"))
