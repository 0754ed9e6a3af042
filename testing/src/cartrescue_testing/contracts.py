"""The conformance kit: pytest base classes that check a connector or a channel against what
the engine relies on, plus a loopback HTTP fake to observe what a channel delivered.

Subclass in your own test module (the class name must start with ``Test``) and provide the
fixtures each base class names::

    from cartrescue_testing.contracts import ChannelContract, Delivery, LoopbackFake, Reply

    class TestMyChannel(ChannelContract):
        @pytest.fixture
        def fake(self):
            with LoopbackFake(
                read=lambda r: Delivery(to=r.form()["to"], body=r.form()["text"]),
                accepted=lambda r: Reply(200, {"id": "1"}),
                rejected=Reply(400, {"error": "invalid number"}),
                throttled=Reply(429, {"error": "slow down"}),
            ) as fake:
                yield fake

        @pytest.fixture
        def channel(self, fake):
            return MyChannel(api_key="k", base_url=fake.url, sleep=lambda s: None)

    class TestMyConnector(ConnectorContract):
        @pytest.fixture
        def connector(self):
            return MyConnector(...)  # reading a fake shop with a few checkouts

Part of the ``cartrescue-testing`` distribution, which brings pytest.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Protocol, cast, runtime_checkable
from urllib.parse import parse_qs, parse_qsl, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pytest

from cartrescue.channels.base import KINDS, BatchChannel, Channel
from cartrescue.connectors.base import (
    Connector,
    CustomerHistoryLookup,
    DiscountCapable,
    PurchaseLookup,
    ShopTimezone,
)
from cartrescue.errors import (
    ConnectorError,
    PermanentSendError,
    SendError,
    SendOutcomeUnknown,
    TransientSendError,
)
from cartrescue.models import (
    BadCheckout,
    ChannelKind,
    Checkout,
    Content,
    CustomerHistory,
    Discount,
    DiscountOffer,
    Message,
    Purchase,
    Receipt,
    normalize_email,
)

from .loopback import LoopbackServer

__all__ = [
    "ChannelContract",
    "ChannelFake",
    "ConnectorContract",
    "Delivery",
    "LoopbackFake",
    "LoopbackProvider",
    "Recorded",
    "Reply",
    "contract_message",
]


# -- a loopback HTTP server ----------------------------------------------------------------
@dataclass(frozen=True)
class Recorded:
    """One request the loopback server received."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        """A header's value, whatever its case."""
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None

    def form(self) -> dict[str, str]:
        """The body as form fields (the last value of a repeated field)."""
        return dict(parse_qsl(self.body.decode(), keep_blank_values=True))

    def json(self) -> Any:
        return json.loads(self.body)

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


@dataclass(frozen=True)
class Reply:
    """An answer for the loopback server to give. ``body`` may be bytes, text or JSON data.
    ``delay`` (seconds) is waited before answering; ``drop`` closes the connection without
    answering, as a provider that died after reading the request would."""

    status: int = 200
    body: bytes | str | dict[str, Any] | list[Any] = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False

    def encoded(self) -> tuple[bytes, str]:
        if isinstance(self.body, bytes):
            return self.body, "application/octet-stream"
        if isinstance(self.body, str):
            return self.body.encode(), "text/plain; charset=utf-8"
        return json.dumps(self.body).encode(), "application/json"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # headers and body go out in two writes; with Nagle on, the body would wait for the
    # client's delayed ACK (~40 ms) on every keep-alive request
    disable_nagle_algorithm = True
    server: _Server

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        recorded = Recorded(
            self.command, parts.path, parse_qs(parts.query), dict(self.headers.items()), body
        )
        reply = self.server.provider._reply(recorded)
        wait = self.server.provider.latency + reply.delay
        if wait:
            time.sleep(wait)
        if reply.drop:
            self.close_connection = True
            return
        data, content_type = reply.encoded()
        self.send_response(reply.status)
        headers = {"Content-Type": content_type, **reply.headers}
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: requests are in ``provider.requests``."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # A real provider accepts as many connections as a client opens at once; with the
    # default backlog of 5 a burst of connects loses SYNs and waits a 1 s retransmit.
    request_queue_size = 128
    provider: LoopbackProvider

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: a client that gave up (a timeout under test) is expected."""


class LoopbackProvider:
    """A real HTTP server on 127.0.0.1 (a free port) standing in for a provider.

    Every request is kept in ``requests``. Answers come first from replies queued with
    :meth:`push`, then from ``respond(request)``, else an empty 200. ``latency`` seconds are
    waited before every answer. Use it as a context manager, or ``start()``/``stop()``.
    """

    def __init__(
        self, respond: Callable[[Recorded], Reply] | None = None, *, latency: float = 0.0
    ) -> None:
        self.respond = respond
        self.latency = latency
        self.requests: list[Recorded] = []
        self._queue: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._server: LoopbackServer | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the loopback provider is not started")
        return self._server.url

    def push(self, *replies: Reply) -> None:
        """Answer the next requests with these replies, in order."""
        with self._lock:
            self._queue.extend(replies)

    def _reply(self, recorded: Recorded) -> Reply:
        with self._lock:
            self.requests.append(recorded)
            queued = self._queue.popleft() if self._queue else None
        if queued is not None:
            return queued
        return self.respond(recorded) if self.respond else Reply()

    def start(self) -> LoopbackProvider:
        self._server = LoopbackServer(_Handler, server_class=_Server)
        # Set before anyone can know the port, so no request comes before it.
        cast(_Server, self._server.server).provider = self
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> LoopbackProvider:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


# -- observing a channel -------------------------------------------------------------------
@dataclass(frozen=True)
class Delivery:
    """What a provider received: the recipient as the provider wrote it, and a text in which
    the message's content can be found (the request body, or the decoded email)."""

    to: str
    body: str


@runtime_checkable
class ChannelFake(Protocol):
    """What :class:`ChannelContract` needs from the fake standing in for your provider.

    ``deliveries()`` lists the messages the provider accepted, in order. ``reject(to)`` makes
    it refuse every later message to ``to`` as its API refuses an invalid recipient.
    ``throttle_next()`` makes it answer the next request as its API answers "too many
    requests". Raise ``NotImplementedError`` from either if your provider has no such
    answer; those checks are then skipped.
    """

    def deliveries(self) -> list[Delivery]: ...

    def reject(self, to: str) -> None: ...

    def throttle_next(self) -> None: ...


class LoopbackFake:
    """A :class:`ChannelFake` over a :class:`LoopbackProvider`, for HTTP providers.

    ``read`` turns a request into the :class:`Delivery` it asks for; ``accepted`` builds the
    provider's answer to a request it accepts; ``rejected`` and ``throttled`` are its answers
    to an invalid recipient and to too many requests (``None``: it has none).
    """

    def __init__(
        self,
        *,
        read: Callable[[Recorded], Delivery],
        accepted: Callable[[Recorded], Reply],
        rejected: Reply | None = None,
        throttled: Reply | None = None,
        latency: float = 0.0,
    ) -> None:
        self._read = read
        self._accepted = accepted
        self._rejected = rejected
        self._throttled = throttled
        self._refused: set[str] = set()
        self._throttle = 0
        self._delivered: list[Delivery] = []
        self._lock = threading.Lock()
        self.provider = LoopbackProvider(self._respond, latency=latency)

    @property
    def url(self) -> str:
        return self.provider.url

    def _respond(self, request: Recorded) -> Reply:
        delivery = self._read(request)
        with self._lock:
            if self._throttle and self._throttled is not None:
                self._throttle -= 1
                return self._throttled
            if self._rejected is not None and _key(delivery.to) in self._refused:
                return self._rejected
            self._delivered.append(delivery)
        return self._accepted(request)

    def deliveries(self) -> list[Delivery]:
        with self._lock:
            return list(self._delivered)

    def reject(self, to: str) -> None:
        if self._rejected is None:
            raise NotImplementedError
        with self._lock:
            self._refused.add(_key(to))

    def throttle_next(self) -> None:
        if self._throttled is None:
            raise NotImplementedError
        with self._lock:
            self._throttle += 1

    def __enter__(self) -> LoopbackFake:
        self.provider.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.provider.stop()


def _key(recipient: str) -> str:
    """A recipient compared loosely: an address lower-cased, a phone number by its digits."""
    if "@" in recipient:
        return recipient.strip().lower()
    return "".join(ch for ch in recipient if ch.isdigit())


_RECIPIENTS: dict[str, list[str]] = {
    "sms": ["+4791234567", "+4741234568", "+447700900123"],
    "whatsapp": ["+4791234567", "+4741234568", "+447700900123"],
    "email": ["kari@example.no", "ola.nordmann@example.com", "buyer+tag@example.org"],
}


def contract_message(kind: ChannelKind, to: str, marker: str, *, step: int = 1) -> Message:
    """A message of ``kind`` to ``to`` whose content carries ``marker`` (letters and digits,
    so it survives form and JSON encoding)."""
    text = f"Your cart is waiting {marker}: https://shop.example/r/{marker}"
    content = Content(text=text)
    if kind == "email":
        content = Content(
            text=text, subject=f"Your cart {marker}", html=f"<p>Your cart is waiting {marker}</p>"
        )
    elif kind == "whatsapp":
        content = Content(
            text=text,
            template="cart_reminder",
            language="en",
            parameters=("Kari", marker),
            button_parameter=marker,
        )
    return Message(
        key=f"contract-{marker}:{step}:{kind}",
        channel=kind,
        to=to,
        checkout_id=f"contract-{marker}",
        step=step,
        locale="en",
        content=content,
        unsubscribe_url=f"https://shop.example/unsubscribe/{marker}",
    )


def _marker() -> str:
    return "CR" + secrets.token_hex(5).upper()


class ChannelContract:
    """Checks a channel against what the engine relies on.

    Provide the fixtures ``channel`` (the channel under test, delivering to your fake) and
    ``fake`` (a :class:`ChannelFake`). Override ``recipients`` (three distinct recipients
    the fake accepts; defaults suit the channel's kind) and ``secrets`` (credentials that
    must never appear in errors or logs) when needed. Send retries should not really sleep
    in tests: give your channel a no-op ``sleep`` if it has one.

    Checked: it is a :class:`~cartrescue.channels.Channel`; a send delivers once and
    returns a receipt; messages are independent and in order; a refused recipient is a
    :class:`~cartrescue.errors.PermanentSendError` whose text shows neither the full
    recipient nor a secret, and the next send still works; "too many requests" is retried
    or reported as transient, never as unknown; text no encoder accepts (a lone surrogate)
    is delivered or refused as permanent or transient, never an unknown outcome nor an
    exception outside the contract; sending works again after ``close()``;
    ``send_batch`` (when present) keeps order and isolates failures; the log lines of
    ``cartrescue`` and of the channel's own package mask recipients.
    """

    @pytest.fixture
    def recipients(self, channel: Channel) -> list[str]:
        return list(_RECIPIENTS[channel.kind])

    @pytest.fixture
    def secrets(self) -> list[str]:
        return []

    @staticmethod
    def delivered(fake: ChannelFake, message: Message) -> list[Delivery]:
        """The deliveries of ``message``: to its recipient, carrying its marker."""
        marker = message.checkout_id.removeprefix("contract-")
        return [d for d in fake.deliveries() if _key(d.to) == _key(message.to) and marker in d.body]

    def test_is_a_channel(self, channel: Channel) -> None:
        assert isinstance(channel, Channel)
        assert channel.kind in KINDS

    def test_send_delivers_once_and_returns_a_receipt(
        self, channel: Channel, fake: ChannelFake, recipients: list[str]
    ) -> None:
        message = contract_message(channel.kind, recipients[0], _marker())
        receipt = channel.send(message)
        assert isinstance(receipt, Receipt)
        assert isinstance(receipt.provider, str)
        assert receipt.provider
        assert len(self.delivered(fake, message)) == 1
        assert len(fake.deliveries()) == 1

    def test_messages_are_delivered_independently_in_order(
        self, channel: Channel, fake: ChannelFake, recipients: list[str]
    ) -> None:
        messages = [contract_message(channel.kind, to, _marker()) for to in recipients[:3]]
        for message in messages:
            channel.send(message)
        for message in messages:
            assert len(self.delivered(fake, message)) == 1
        order = [
            next(i for i, m in enumerate(messages) if self.delivered(fake, m) == [d])
            for d in fake.deliveries()
        ]
        assert order == [0, 1, 2]

    def test_refused_recipient_is_permanent_and_masked(
        self,
        channel: Channel,
        fake: ChannelFake,
        recipients: list[str],
        secrets: list[str],
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        try:
            fake.reject(recipients[1])
        except NotImplementedError:
            pytest.skip("the fake has no way to refuse a recipient")
        caplog.set_level(logging.DEBUG)
        refused = contract_message(channel.kind, recipients[1], _marker())
        with pytest.raises(PermanentSendError) as info:
            channel.send(refused)
        shown = f"{info.value} {info.value.snippet or ''}"
        assert recipients[1] not in shown, "the error shows the full recipient"
        for secret in secrets:
            assert secret not in shown, "the error shows a secret"
        after = contract_message(channel.kind, recipients[0], _marker())
        channel.send(after)
        assert len(self.delivered(fake, after)) == 1
        assert self.delivered(fake, refused) == []
        own = ("cartrescue", type(channel).__module__.split(".")[0])
        for record in caplog.records:
            if record.name.split(".")[0] not in own:
                continue  # the fake's own logging (a test server) is not the channel's
            line = record.getMessage()
            assert recipients[1] not in line, line
            assert recipients[0] not in line, line
            assert not any(secret in line for secret in secrets), line

    def test_too_many_requests_is_retried_or_transient(
        self, channel: Channel, fake: ChannelFake, recipients: list[str]
    ) -> None:
        try:
            fake.throttle_next()
        except NotImplementedError:
            pytest.skip("the fake has no 'too many requests' answer")
        message = contract_message(channel.kind, recipients[0], _marker())
        try:
            channel.send(message)
        except SendOutcomeUnknown:
            pytest.fail("'too many requests' means not sent: it must not be an unknown outcome")
        except TransientSendError:
            assert self.delivered(fake, message) == []
        else:
            assert len(self.delivered(fake, message)) == 1

    def test_unencodable_text_is_never_an_unknown_outcome(
        self, channel: Channel, fake: ChannelFake, recipients: list[str]
    ) -> None:
        message = contract_message(channel.kind, recipients[0], _marker())
        lone = "Kari\ud83d"  # valid JSON ("Kari\\ud83d"), but no encoding accepts it
        content = message.content
        message = replace(
            message,
            content=replace(
                content,
                text=f"{content.text} {lone}",
                subject=f"{content.subject} {lone}" if content.subject else None,
                html=f"{content.html}<p>{lone}</p>" if content.html else None,
                parameters=tuple(f"{p} {lone}" for p in content.parameters),
            ),
        )
        try:
            channel.send(message)
        except SendOutcomeUnknown:
            pytest.fail("text that cannot be encoded was never sent: not an unknown outcome")
        except SendError:
            assert self.delivered(fake, message) == [], "refused, yet delivered"
        else:
            assert len(self.delivered(fake, message)) == 1
        after = contract_message(channel.kind, recipients[1], _marker())
        channel.send(after)
        assert len(self.delivered(fake, after)) == 1

    def test_sends_again_after_close(
        self, channel: Channel, fake: ChannelFake, recipients: list[str]
    ) -> None:
        first = contract_message(channel.kind, recipients[0], _marker())
        channel.send(first)
        channel.close()
        channel.close()
        second = contract_message(channel.kind, recipients[1], _marker())
        channel.send(second)
        channel.close()
        assert len(self.delivered(fake, first)) == 1
        assert len(self.delivered(fake, second)) == 1

    def test_batch_keeps_order_and_isolates_failures(
        self, channel: Channel, fake: ChannelFake, recipients: list[str]
    ) -> None:
        if not isinstance(channel, BatchChannel):
            pytest.skip("the channel has no send_batch")
        try:
            fake.reject(recipients[1])
        except NotImplementedError:
            pytest.skip("the fake has no way to refuse a recipient")
        messages = [
            contract_message(channel.kind, recipients[i % 3], _marker(), step=i + 1)
            for i in range(6)
        ]
        results = channel.send_batch(messages)
        assert len(results) == len(messages)
        for message, result in zip(messages, results, strict=True):
            if message.to == recipients[1]:
                assert isinstance(result, PermanentSendError), result
                assert self.delivered(fake, message) == []
            else:
                assert isinstance(result, Receipt), result
                assert len(self.delivered(fake, message)) == 1


class ConnectorContract:
    """Checks a connector against what the engine relies on.

    Provide the fixture ``connector``: your connector reading a fake shop that holds a few
    abandoned checkouts. Optionally provide ``connector_with_bad_item``: one whose shop also
    holds a checkout it cannot map. Set ``filters_by_since = False`` if your platform cannot
    filter by update time.

    Checked: it is a :class:`~cartrescue.connectors.Connector` with a stable ``name``;
    ``abandoned_checkouts`` is lazy, yields only ``Checkout`` and ``BadCheckout``, at least
    one checkout, each well formed (unique id, aware times, an http(s) recovery URL, an ISO
    currency, non-negative money, normalised contacts); a second pass sees the same
    checkouts; one that says ``read_ahead = True`` reads the same from another thread; a
    ``since`` in the future yields none; a bad item is reported and the others still come;
    the optional capabilities it has answer in the documented shapes (customer history: an
    answer for every checkout asked about, in one call).
    """

    filters_by_since: ClassVar[bool] = True

    @pytest.fixture
    def connector_with_bad_item(self) -> Connector:
        pytest.skip("no connector_with_bad_item fixture given")

    @staticmethod
    def checkouts(connector: Connector, since: datetime | None = None) -> list[Checkout]:
        return [c for c in connector.abandoned_checkouts(since) if isinstance(c, Checkout)]

    def test_is_a_connector(self, connector: Connector) -> None:
        assert isinstance(connector, Connector)
        assert isinstance(connector.name, str)
        assert connector.name.strip() == connector.name
        assert connector.name
        name = connector.name
        list(connector.abandoned_checkouts(None))
        assert connector.name == name, "the name keys the watermark: it must not change"

    def test_abandoned_checkouts_is_lazy(self, connector: Connector) -> None:
        items = connector.abandoned_checkouts(None)
        assert isinstance(items, Iterator), "yield page by page; do not build a list"
        assert iter(items) is items

    def test_yields_checkouts(self, connector: Connector) -> None:
        items = list(connector.abandoned_checkouts(None))
        for item in items:
            assert isinstance(item, Checkout | BadCheckout), type(item)
        assert any(isinstance(item, Checkout) for item in items), "the fake shop has none"

    def test_checkouts_are_well_formed(self, connector: Connector) -> None:
        checkouts = self.checkouts(connector)
        ids = [c.id for c in checkouts]
        assert len(ids) == len(set(ids)), "a checkout id appears twice in one pass"
        for c in checkouts:
            assert isinstance(c.id, str)
            assert c.id
            for moment in (c.abandoned_at, c.updated_at, c.completed_at):
                assert moment is None or moment.utcoffset() is not None
            assert c.updated_at >= c.abandoned_at - timedelta(seconds=1), c.id
            assert c.recovery_url.startswith(("https://", "http://")), c.id
            assert isinstance(c.total, Decimal), c.id
            assert c.total >= 0, c.id
            for item in c.line_items:
                assert item.quantity >= 0, c.id
                assert item.price >= 0, c.id
            customer = c.customer
            if customer is not None and customer.email is not None:
                assert normalize_email(customer.email) == customer.email, c.id

    def test_a_second_pass_sees_the_same_checkouts(self, connector: Connector) -> None:
        first = {c.id for c in self.checkouts(connector)}
        second = {c.id for c in self.checkouts(connector)}
        assert first == second

    def test_since_in_the_future_yields_no_checkouts(self, connector: Connector) -> None:
        if not self.filters_by_since:
            pytest.skip("filters_by_since is off")
        future = datetime.now(UTC) + timedelta(days=365)
        assert self.checkouts(connector, future) == []

    def test_read_ahead_reads_the_same_from_another_thread(self, connector: Connector) -> None:
        read_ahead = getattr(connector, "read_ahead", False)
        assert isinstance(read_ahead, bool), "read_ahead is True or False"
        if not read_ahead:
            pytest.skip("the connector does not read ahead")
        here = [c.id for c in self.checkouts(connector)]
        there: list[Checkout] = []
        raised: list[BaseException] = []

        def read() -> None:
            try:
                there.extend(self.checkouts(connector))
            except BaseException as err:  # reported below, in the test's thread
                raised.append(err)

        reader = threading.Thread(target=read)
        reader.start()
        reader.join(60)
        assert not reader.is_alive(), "reading in another thread did not end"
        why = "read_ahead = True: the engine reads in a thread of its own"
        assert not raised, f"{why}, and there the connector raised {raised[0]!r}"
        assert [c.id for c in there] == here, f"{why}, and must see the same checkouts there"

    def test_bad_item_is_reported_and_the_rest_goes_on(
        self, connector_with_bad_item: Connector
    ) -> None:
        items = list(connector_with_bad_item.abandoned_checkouts(None))
        bad = [i for i in items if isinstance(i, BadCheckout)]
        assert bad, "the malformed item was not reported as a BadCheckout"
        assert all(b.id and b.reason for b in bad)
        assert any(isinstance(i, Checkout) for i in items), "one bad item stopped the rest"

    def test_optional_capabilities_answer_in_shape(self, connector: Connector) -> None:
        checkout = self.checkouts(connector)[0]
        if isinstance(connector, PurchaseLookup):
            found = connector.find_purchase(checkout)
            assert found is None or isinstance(found, Purchase)
        if isinstance(connector, ShopTimezone):
            zone = connector.shop_timezone()
            if zone is not None:
                try:
                    ZoneInfo(zone)
                except (ZoneInfoNotFoundError, ValueError):
                    pytest.fail(f"shop_timezone() gave {zone!r}, not an IANA zone")
        if isinstance(connector, CustomerHistoryLookup):
            checkouts = self.checkouts(connector)
            histories = connector.customer_histories(checkouts)
            assert set(histories) == {c.id for c in checkouts}, "answer for every checkout"
            for answer in histories.values():
                assert answer is None or isinstance(answer, CustomerHistory | ConnectorError)
                if isinstance(answer, CustomerHistory) and answer.last_order_at is not None:
                    assert answer.last_order_at.utcoffset() is not None
        if isinstance(connector, DiscountCapable):
            offer = DiscountOffer(Decimal(10), 3600)
            discount = connector.create_discount(checkout, offer)
            assert isinstance(discount, Discount)
            assert discount.code
            assert discount.percent == offer.percent
            assert discount.url is None or discount.url.startswith(("https://", "http://"))
