"""LINK Mobility's callbacks, beside the LINK Mobility channel: delivery reports and MO SMS.

LINK's Common platform delivers both through a *gate* that LINK Support sets up with the URL
you give them. The Gate API documents one way for a gate to authenticate to your endpoint:
HTTP Basic auth with the ``username`` and ``password`` set on the gate's destination ("Only
basic authentication is supported"). Both handlers check it exactly (constant time) and
answer 401 with a ``WWW-Authenticate: Basic`` challenge otherwise, changing nothing.

``POST /linkmobility/dlr``: delivery reports (SMS REST API "MT and Delivery Reports"), JSON
(or form key/value pairs) with ``id`` (the ``messageId`` the send returned; a part of a
multipart message is ``{id}${n}``), ``refId`` and ``resultCode``: 1001 and 1007 are
delivered, 1000, 1005, 1008, 1011, 1012 and 1013 sent (not final), 4, 5 and 1010 unknown
(no signal), every other code failed (:func:`~cartrescue.inbound.record_signal`).

``POST /linkmobility/sms``: MO messages (SMS REST API "MO messages"), JSON with ``source``
(the sender, international format), ``content.userData`` (the text) and ``messageId``. A
STOP-family keyword opts the sender out of SMS, a START-family keyword back in, "1"–"5"
answers why they left, other text is a reply for
:class:`~cartrescue.conversations.Conversations`; a ``messageId`` taken before changes
nothing. Both answer 200, which Common takes as the acknowledgement.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from ..clock import Clock, utc_now
from ..conversations import Conversations, take_sms
from ..inbound import InboundRequest, InboundResponse, record_signal, secret_matches
from ..models import normalize_phone
from ..store.base import Signal, Store

__all__ = [
    "LinkMobilityInbound",
    "LinkMobilityReports",
    "basic_auth",
    "linkmobility_signal",
]

log = logging.getLogger("cartrescue.web")

DELIVERED = frozenset({1001, 1007})
"""Billed and delivered; delivered, billing delayed."""
PENDING = frozenset({1000, 1005, 1008, 1011, 1012, 1013})
"""Sent to the operator, queued, billed and not yet delivered: not final."""
UNKNOWN = frozenset({4, 5, 1010})
"""Timeout, operator unknown error, expired without an operator report: delivery unknown."""

UNAUTHORIZED = InboundResponse(
    401,
    b"authentication required\n",
    headers=(("WWW-Authenticate", 'Basic realm="cartrescue", charset="UTF-8"'),),
)


def basic_auth(username: str, password: str) -> str:
    """The ``Authorization`` header a gate configured with these credentials sends."""
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


def linkmobility_signal(result_code: int) -> Signal | None:
    """The engagement signal of a delivery report's ``resultCode`` (None: unknown)."""
    if result_code in DELIVERED:
        return Signal.DELIVERED
    if result_code in PENDING:
        return Signal.SENT
    if result_code in UNKNOWN:
        return None
    return Signal.FAILED


class _Gate:
    """What both handlers share: the gate's credentials and the check of a request."""

    methods = ("POST",)

    def __init__(self, store: Store, username: str, password: str, *, clock: Clock) -> None:
        self.store = store
        self.expected = basic_auth(username, password)
        self.clock = clock

    def authenticated(self, request: InboundRequest) -> bool:
        given = request.headers.get("Authorization", "")
        if secret_matches(self.expected, given):
            return True
        log.warning("web: LINK Mobility request without the gate's credentials refused")
        return False


class LinkMobilityReports(_Gate):
    """The :class:`~cartrescue.inbound.InboundHandler` for LINK Mobility delivery reports."""

    route = "/linkmobility/dlr"

    def __init__(
        self, store: Store, username: str, password: str, *, clock: Clock = utc_now
    ) -> None:
        super().__init__(store, username, password, clock=clock)

    def handle(self, request: InboundRequest) -> InboundResponse:
        if not self.authenticated(request):
            return UNAUTHORIZED
        report = _body(request)
        if report is None:
            return InboundResponse.text(400, "not JSON or form data\n")
        try:
            code = int(report.get("resultCode"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return InboundResponse.text(400, "resultCode is not a number\n")
        message_id = report.get("id")
        if isinstance(message_id, str):
            message_id = message_id.split("$", 1)[0]  # one part of a multipart message
        record_signal(self.store, self.clock, "linkmobility", message_id, linkmobility_signal(code))
        return InboundResponse.text(200, "ok\n")


class LinkMobilityInbound(_Gate):
    """The :class:`~cartrescue.inbound.InboundHandler` for LINK Mobility MO messages."""

    route = "/linkmobility/sms"

    def __init__(
        self,
        store: Store,
        username: str,
        password: str,
        *,
        clock: Clock = utc_now,
        conversations: Conversations | None = None,
    ) -> None:
        super().__init__(store, username, password, clock=clock)
        self.conversations = conversations

    def handle(self, request: InboundRequest) -> InboundResponse:
        if not self.authenticated(request):
            return UNAUTHORIZED
        message = _body(request)
        if message is None:
            return InboundResponse.text(400, "not JSON\n")
        content = message.get("content")
        text = content.get("userData") if isinstance(content, Mapping) else None
        if not isinstance(text, str):
            return InboundResponse.text(400, "content.userData is missing\n")
        message_id = message.get("messageId")
        message_id = message_id[:200] if isinstance(message_id, str) and message_id else None
        if message_id and not self.store.record_delivery("linkmobility", message_id, self.clock()):
            log.info("web: LINK Mobility message delivered again, ignored")
            return InboundResponse.text(200, "ok\n")
        try:
            phone = normalize_phone(str(message.get("source") or ""))
        except ValueError:
            phone = None
        if not take_sms(
            self.store, self.clock, self.conversations, "linkmobility", phone, text, message_id
        ):
            return InboundResponse.text(400, "source is not a phone number\n")
        return InboundResponse.text(200, "ok\n")


def _body(request: InboundRequest) -> Mapping[str, Any] | None:
    """The JSON object posted (or form key/value pairs, which a gate may be set to send)."""
    body = request.body.strip()
    try:
        if body.startswith(b"{"):
            data = json.loads(body)
            return data if isinstance(data, dict) else None
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True))
    except (UnicodeError, ValueError, RecursionError):
        return None
