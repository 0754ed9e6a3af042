"""SMS through LINK Mobility's Common API (the "Common Platform" SMS REST API).

``POST {assigned base URL}/sms/send`` with HTTP Basic auth and a JSON body ``source``,
``sourceTON``, ``destination`` (E.164 with ``+``), ``userData`` (the text), ``platformId``,
``platformPartnerId`` and an optional ``refId`` and ``deliveryReportGates``. Success is HTTP
200 with ``{"messageId", "resultCode", "description"}`` (1005 "Queued", 1000 "Sent"); errors
come as 4xx with a ``resultCode``/``description`` body. The base URL is assigned per customer,
so it must be configured. The API cannot carry 4-byte Unicode (emoji).
"""

from __future__ import annotations

import re
from typing import ClassVar, Literal, Unpack

import requests

from ..errors import (
    ConfigError,
    PermanentSendError,
    RetryableSendError,
    SendError,
    TransientSendError,
)
from ..models import ChannelKind, Message, Receipt
from ..settings.base import PluginSettings
from ..settings.providers import LinkMobilitySettings
from .base import HttpChannel, HttpOptions, HttpRequest, require

__all__ = ["LinkMobilitySMS"]

ACCEPTED = {1000, 1005}
"""Sent to operator; queued."""
TEMPORARY = {1, 3, 4}
"""Temporary routing error, max throttling exceeded, timeout: the message was not taken."""

SourceTON = Literal["ALPHANUMERIC", "SHORTNUMBER", "MSISDN"]


def _ton(source: str) -> SourceTON:
    if re.fullmatch(r"\+?\d{7,15}", source):
        return "MSISDN"
    if source.isdigit():
        return "SHORTNUMBER"
    return "ALPHANUMERIC"


class LinkMobilitySMS(HttpChannel):
    """Sends SMS with LINK Mobility.

    Config (``[channels.sms] type = "linkmobility"``): ``base_url`` (required: the endpoint
    LINK assigned you), ``username``, ``password_env``, ``platform_id``, ``platform_partner_id``,
    ``from_number`` (a number, short number or alphanumeric sender), optional ``source_ton``
    (derived from ``from_number`` when absent) and ``delivery_report_gate``, plus the shared
    ``rate_limit``, ``concurrency``, ``timeout``, ``attempts``.

    A message containing emoji (characters outside the Basic Multilingual Plane) is refused
    before sending with a permanent error naming the character, since this API cannot carry
    it. The message key goes out as ``refId``.
    """

    settings_model: ClassVar[type[PluginSettings]] = LinkMobilitySettings

    provider: ClassVar[str] = "linkmobility"
    kinds: ClassVar[tuple[ChannelKind, ...]] = ("sms",)
    credentials_hint: ClassVar[str] = "check username and password"

    def __init__(
        self,
        kind: ChannelKind = "sms",
        *,
        username: str,
        password: str,
        platform_id: str,
        platform_partner_id: str,
        from_number: str,
        source_ton: SourceTON | None = None,
        delivery_report_gate: str | None = None,
        **options: Unpack[HttpOptions],
    ) -> None:
        self._auth = (require(username, "username"), require(password, "password"))
        self.platform_id = require(platform_id, "platform_id")
        self.platform_partner_id = require(platform_partner_id, "platform_partner_id")
        self.source = require(from_number, "from_number")
        if source_ton is not None and source_ton not in ("ALPHANUMERIC", "SHORTNUMBER", "MSISDN"):
            raise ConfigError("expected ALPHANUMERIC, SHORTNUMBER or MSISDN", key="source_ton")
        self.source_ton: SourceTON = source_ton or _ton(self.source)
        self.delivery_report_gate = delivery_report_gate
        if not options.get("base_url"):
            raise ConfigError(
                "LINK Mobility assigns each customer an endpoint; set base_url to it",
                key="base_url",
            )
        super().__init__(kind, secrets=(password,), **options)

    def validate(self, message: Message) -> None:
        self.require_phone(message)
        for position, char in enumerate(message.text, start=1):
            if ord(char) > 0xFFFF:
                raise self.error(
                    PermanentSendError,
                    f"cannot send {char!r} (U+{ord(char):X}, character {position}): LINK "
                    "Mobility's Common API does not carry emoji or other 4-byte characters; "
                    "remove it from the SMS template",
                )

    def build_request(self, message: Message) -> HttpRequest:
        body: dict[str, object] = {
            "source": self.source,
            "sourceTON": self.source_ton,
            "destination": message.to,
            "destinationTON": "MSISDN",
            "userData": message.text,
            "platformId": self.platform_id,
            "platformPartnerId": self.platform_partner_id,
            "refId": message.key,
        }
        if self.delivery_report_gate:
            body["useDeliveryReport"] = True
            body["deliveryReportGates"] = [self.delivery_report_gate]
        return HttpRequest("/sms/send", options={"json": body, "auth": self._auth})

    def _code(self, response: requests.Response) -> tuple[int | None, str | None]:
        body = self.json_body(response)
        if not isinstance(body, dict):
            return None, None
        raw = body.get("resultCode", body.get("errorCode"))
        try:
            code = None if raw is None else int(raw)
        except (TypeError, ValueError):
            code = None
        return code, str(body.get("description") or "") or None

    def parse_response(self, message: Message, response: requests.Response) -> Receipt:
        code, detail = self._code(response)
        body = self.json_body(response)
        if code is not None and code not in ACCEPTED:
            raise self.error_for(message, response)
        message_id = body.get("messageId") if isinstance(body, dict) else None
        return Receipt(provider=self.provider, provider_id=message_id, detail=detail)

    def error_for(self, message: Message, response: requests.Response) -> SendError:
        result, text = self._code(response)
        if result in TEMPORARY:
            cls: type[SendError] = RetryableSendError if result == 3 else TransientSendError
            return self.error(
                cls, "did not take the message now", response, code=result, detail=text
            )
        if response.status_code < 300:
            return self.error(
                PermanentSendError, "refused the message", response, code=result, detail=text
            )
        return self.default_error(message, response, code=result, detail=text)
