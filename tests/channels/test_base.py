import socket
import threading
import time

import pytest
import requests
import responses

from cartrescue.channels.base import (
    BatchChannel,
    Channel,
    HttpChannel,
    HttpRequest,
    RateLimiter,
    is_gsm7,
)
from cartrescue.errors import (
    ConfigError,
    PermanentSendError,
    SendOutcomeUnknown,
    TransientSendError,
)
from cartrescue.models import Receipt
from cartrescue.registry import CHANNELS, load_plugin
from cartrescue_testing.contracts import LoopbackProvider, Reply
from tests.channels.conftest import make_message


class EchoSMS(HttpChannel):
    """A minimal provider: POST /send {to, text} → {"id": ...}."""

    provider = "echo"
    default_base_url = "https://echo.example"
    kinds = ("sms",)

    def __init__(self, kind="sms", *, token="echo-secret-token", **options):
        self.token = token
        super().__init__(kind, secrets=(token,), **options)

    def build_request(self, message):
        return HttpRequest(
            "/send",
            options={
                "json": {"to": message.to, "text": message.text},
                "headers": {"Authorization": f"Bearer {self.token}"},
            },
        )

    def parse_response(self, message, response):
        body = response.json()
        if body.get("crash"):
            raise KeyError("bug in the provider module")
        return Receipt(provider=self.provider, provider_id=body["id"])


class FakeTime:
    def __init__(self):
        self.now = 100.0
        self.sleeps = []

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(round(seconds, 6))
        self.now += seconds


def test_rate_limiter_spaces_calls():
    time = FakeTime()
    limiter = RateLimiter(10, clock=time.clock, sleep=time.sleep)
    for _ in range(4):
        limiter.acquire()
    assert time.sleeps == [0.1, 0.1, 0.1]


def test_rate_limiter_does_not_wait_when_calls_are_already_slow():
    time = FakeTime()
    limiter = RateLimiter(2, clock=time.clock, sleep=time.sleep)
    limiter.acquire()
    time.now += 5
    limiter.acquire()
    assert time.sleeps == []


def test_rate_limiter_is_shared_by_threads():
    time = FakeTime()
    lock = threading.Lock()

    def sleep(seconds):
        with lock:
            time.sleeps.append(round(seconds, 6))

    limiter = RateLimiter(50, clock=time.clock, sleep=sleep)
    threads = [threading.Thread(target=limiter.acquire) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(time.sleeps) == [0.02, 0.04, 0.06, 0.08]


def test_no_rate_limit_never_sleeps():
    time = FakeTime()
    limiter = RateLimiter(None, clock=time.clock, sleep=time.sleep)
    for _ in range(100):
        limiter.acquire()
    assert time.sleeps == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hei Kari! Handlekurven din venter på deg: https://x.example/r/1", True),
        ("Price: 10 € [sale] {today} ~ \\ ^ |", True),
        ("Ça va? Ç is GSM, ç is not", False),
        ("Your cart 🛒", False),
        ("Curly “quotes”", False),
    ],
)
def test_is_gsm7(text, expected):
    assert is_gsm7(text) is expected


@responses.activate
def test_every_request_has_the_configured_timeout():
    responses.post("https://echo.example/send", json={"id": "1"})
    EchoSMS(timeout=12).send(make_message())
    assert responses.calls[0].request.req_kwargs["timeout"] == (5.0, 12.0)


@responses.activate
def test_base_url_override_and_user_agent():
    responses.post("http://proxy.internal:8080/echo/send", json={"id": "1"})
    EchoSMS(base_url="http://proxy.internal:8080/echo/").send(make_message())
    assert responses.calls[0].request.headers["User-Agent"].startswith("cartrescue/")


def test_injected_session_is_used_and_left_open():
    session = requests.Session()
    with responses.RequestsMock() as mock:
        mock.post("https://echo.example/send", json={"id": "7"})
        channel = EchoSMS(session=session)
        assert channel.session is session
        assert channel.send(make_message()).provider_id == "7"
        channel.close()
    assert session.adapters  # still usable: close() left the caller's session alone


def test_it_is_a_channel_with_batches():
    channel = EchoSMS()
    assert isinstance(channel, Channel)
    assert isinstance(channel, BatchChannel)


def test_a_kind_the_provider_cannot_send_is_a_config_error():
    with pytest.raises(ConfigError) as info:
        EchoSMS(kind="email")
    assert info.value.key == "kind"
    assert "[channels.sms]" in str(info.value)


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"concurrency": 0}, "concurrency"),
        ({"concurrency": 2.5}, "concurrency"),
        ({"rate_limit": -1}, "rate_limit"),
        ({"timeout": [1, 2, 3]}, "timeout"),
        ({"timeout": "soon"}, "timeout"),
        ({"attempts": True}, "attempts"),
        ({"base_url": "ftp://x"}, "base_url"),
    ],
)
def test_shared_options_are_validated(options, key):
    with pytest.raises(ConfigError) as info:
        EchoSMS(**options)
    assert info.value.key == key


def test_a_message_of_another_kind_is_refused():
    with pytest.raises(PermanentSendError):
        EchoSMS().send(make_message("email", "kari@example.no"))


def test_connection_refused_is_retried_then_transient(waits):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    channel = EchoSMS(
        base_url=f"http://127.0.0.1:{port}", attempts=3, sleep=waits.append, rate_limit=0
    )
    with pytest.raises(TransientSendError) as info:
        channel.send(make_message())
    assert not isinstance(info.value, SendOutcomeUnknown)
    assert "could not connect" in str(info.value)
    assert len(waits) == 2


@responses.activate
def test_a_tls_failure_is_transient_and_not_retried(waits):
    responses.post("https://echo.example/send", body=requests.exceptions.SSLError("bad cert"))
    with pytest.raises(TransientSendError, match="TLS") as info:
        EchoSMS(sleep=waits.append, rate_limit=0).send(make_message())
    assert not isinstance(info.value, SendOutcomeUnknown)
    assert len(responses.calls) == 1


def test_a_connection_dropped_after_the_request_is_unknown_and_not_resent(waits):
    with LoopbackProvider() as provider:
        provider.push(Reply(drop=True), Reply(200, {"id": "2"}))
        channel = EchoSMS(base_url=provider.url, sleep=waits.append)
        with pytest.raises(SendOutcomeUnknown):
            channel.send(make_message())
        assert len(provider.requests) == 1
        assert waits == []


def test_a_read_timeout_on_a_real_socket_is_unknown(waits):
    with LoopbackProvider() as provider:
        provider.push(Reply(200, {"id": "late"}, delay=0.5))
        channel = EchoSMS(base_url=provider.url, timeout=0.1, sleep=waits.append)
        with pytest.raises(SendOutcomeUnknown, match="may have been sent"):
            channel.send(make_message())
        assert len(provider.requests) == 1


def test_retry_after_longer_than_max_wait_is_capped(waits):
    with LoopbackProvider() as provider:
        provider.push(Reply(429, {}, headers={"Retry-After": "3600"}), Reply(200, {"id": "3"}))
        channel = EchoSMS(base_url=provider.url, sleep=waits.append, max_wait=5, rate_limit=0)
        assert channel.send(make_message()).provider_id == "3"
        assert waits == [5.0]


def test_errors_and_snippets_never_show_the_secret_or_the_recipient():
    with LoopbackProvider() as provider:
        provider.push(
            Reply(400, {"error": "bad token echo-secret-token for +4791234567"}),
        )
        channel = EchoSMS(base_url=provider.url)
        with pytest.raises(PermanentSendError) as info:
            channel.send(make_message(to="+4791234567"))
        shown = str(info.value) + info.value.snippet
        assert "echo-secret-token" not in shown
        assert "+4791234567" not in shown
        assert "+47******67" in shown


def test_send_batch_keeps_order_and_bounds_requests_in_flight():
    lock = threading.Lock()
    in_flight = {"now": 0, "max": 0}

    def respond(request):
        with lock:
            in_flight["now"] += 1
            in_flight["max"] = max(in_flight["max"], in_flight["now"])
        time.sleep(0.05)  # the provider's latency holds the request open
        with lock:
            in_flight["now"] -= 1
        body = request.json()
        if body["to"] == "+4790000001":
            return Reply(400, {"error": "invalid number"})
        return Reply(200, {"id": body["text"]})

    messages = [
        make_message(to="+4790000001" if i == 3 else "+4791234567", text=f"m{i}") for i in range(10)
    ]
    with LoopbackProvider(respond) as provider:
        channel = EchoSMS(base_url=provider.url, concurrency=4, rate_limit=0)
        results = channel.send_batch(messages)
        assert len(provider.requests) == 10
    assert [getattr(r, "provider_id", None) for r in results] == [
        None if i == 3 else f"m{i}" for i in range(10)
    ]
    assert isinstance(results[3], PermanentSendError)
    assert 2 <= in_flight["max"] <= 4


def test_send_batch_turns_an_unexpected_exception_into_unknown():
    with LoopbackProvider() as provider:
        provider.push(Reply(200, {"id": "1"}), Reply(200, {"crash": True}), Reply(200, {"id": "3"}))
        channel = EchoSMS(base_url=provider.url, concurrency=1)
        results = channel.send_batch([make_message(text=f"m{i}") for i in range(3)])
    assert isinstance(results[0], Receipt)
    assert isinstance(results[1], SendOutcomeUnknown)
    assert "KeyError" in str(results[1])
    assert isinstance(results[2], Receipt)


def test_send_batch_of_nothing_is_empty():
    assert EchoSMS().send_batch([]) == []


@responses.activate
def test_idempotent_channels_retry_what_may_have_been_sent(waits):
    from cartrescue.channels.webhook import WebhookChannel

    url = "https://hooks.example/cartrescue"
    responses.post(url, body=requests.ReadTimeout("slow"))
    responses.post(url, status=503)
    responses.post(url, json={"id": "evt_1"})
    channel = WebhookChannel("sms", url=url, secret="s" * 32, idempotent=True, sleep=waits.append)
    assert channel.send(make_message()).provider_id == "evt_1"
    assert len(responses.calls) == 3
    keys = {call.request.headers["Idempotency-Key"] for call in responses.calls}
    assert keys == {"ch_1001:1:sms"}


PROVIDERS = {
    "twilio": (
        "cartrescue.channels.twilio:TwilioSMS",
        "https://api.twilio.com/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json",
        {
            "account_sid": "AC0123456789abcdef0123456789abcdef",
            "auth_token": "t",
            "from_number": "+4759440000",
        },
    ),
    "vonage": (
        "cartrescue.channels.vonage:VonageSMS",
        "https://rest.nexmo.com/sms/json",
        {"api_key": "k", "api_secret": "s", "from_number": "Shop"},
    ),
    "linkmobility": (
        "cartrescue.channels.linkmobility:LinkMobilitySMS",
        "https://n-eu.linkmobility.io/sms/send",
        {
            "base_url": "https://n-eu.linkmobility.io",
            "username": "u",
            "password": "p",
            "platform_id": "COMMON_API",
            "platform_partner_id": "1",
            "from_number": "Shop",
        },
    ),
    "whatsapp": (
        "cartrescue.channels.whatsapp:WhatsAppCloud",
        "https://graph.facebook.com/v23.0/106540352242922/messages",
        {"phone_number_id": "106540352242922", "access_token": "t"},
    ),
    "webhook": (
        "cartrescue.channels.webhook:WebhookChannel",
        "https://hooks.example/cartrescue",
        {"url": "https://hooks.example/cartrescue", "secret": "s" * 16},
    ),
}


@pytest.mark.parametrize("name", sorted(PROVIDERS))
@responses.activate
def test_a_read_timeout_is_unknown_with_no_second_request(name, waits):
    path, url, options = PROVIDERS[name]
    cls = load_plugin(CHANNELS, path)
    channel = cls(kind="whatsapp" if name == "whatsapp" else "sms", sleep=waits.append, **options)
    responses.post(url, body=requests.ReadTimeout("read timed out"))
    responses.post(url, json={})
    with pytest.raises(SendOutcomeUnknown):
        channel.send(make_message(channel.kind))
    assert len(responses.calls) == 1
    assert waits == []


def test_the_environment_proxy_is_honoured_and_read_again_after_close(monkeypatch):
    # Sends reuse the environment's proxy settings within a pass; close() (the end of a
    # pass) forgets them, so a changed environment is seen by the next pass.
    with LoopbackProvider() as proxy:
        proxy.push(Reply(200, {"id": "p1"}))
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        channel = EchoSMS(base_url="http://echo.invalid", attempts=1)
        assert channel.send(make_message()).provider_id == "p1"
        assert proxy.requests[0].headers["Host"] == "echo.invalid"
        channel.close()
        monkeypatch.setenv("NO_PROXY", "echo.invalid")
        with pytest.raises(TransientSendError, match="could not connect"):
            channel.send(make_message())
        assert len(proxy.requests) == 1
