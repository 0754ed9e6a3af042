"""SMS through Vonage's SMS API.

``POST {base}/sms/json`` with form fields ``api_key``, ``api_secret``, ``from``, ``to`` (E.164
without ``+``), ``text``, ``type=unicode`` when the text is not GSM-7, ``client-ref`` and
``callback``. The answer is HTTP 200 even on failure: each part has a ``status`` in
``messages[]`` — ``"0"`` accepted, ``"1"`` throttled, others failures with ``error-text``
(developer.vonage.com/messaging/sms/guides/troubleshooting-sms, /api-errors/sms).
"""

from __future__ import annotations

from typing import ClassVar, Unpack

import requests

from ..errors import (
    ConfigError,
    PermanentSendError,
    RetryableSendError,
    SendError,
    SendOutcomeUnknown,
    TransientSendError,
)
from ..models import ChannelKind, Message, Receipt
from ..settings.base import PluginSettings
from ..settings.providers import VonageSettings
from .base import HttpChannel, HttpOptions, HttpRequest, is_gsm7, require

__all__ = ["VonageSMS"]

THROTTLED = {"1", "10"}
"""Sending faster than the account allows; too many connections ("back off and retry")."""
CREDENTIALS = {"4"}
NOT_SENT_RETRY_LATER = {"8", "9", "11"}
"""Account barred, out of credit, HTTP not enabled: account problems; the message was not
taken, a later pass may send it."""
INTERNAL = {"5"}
"""An error in the platform "whilst processing this message": it may have gone out."""
BARRED = {"7"}
"""The number is barred (blacklisted): it may not receive messages."""


class VonageSMS(HttpChannel):
    """Sends SMS with Vonage (formerly Nexmo).

    Config (``[channels.sms] type = "vonage"``): ``api_key``, ``api_secret_env``,
    ``from_number`` (a number or an alphanumeric sender ID), optional ``status_callback``
    (a URL for delivery receipts), plus the shared ``rate_limit``, ``concurrency``,
    ``timeout``, ``attempts``, ``base_url``.

    The message key goes out as ``client-ref`` (Vonage's own reference, echoed in delivery
    receipts; it does not deduplicate). Per-part status ``1`` is retried; ``7`` (barred)
    is permanent with ``opted_out``; ``5`` (internal error) is an unknown outcome.
    """

    settings_model: ClassVar[type[PluginSettings]] = VonageSettings

    provider: ClassVar[str] = "vonage"
    default_base_url: ClassVar[str | None] = "https://rest.nexmo.com"
    kinds: ClassVar[tuple[ChannelKind, ...]] = ("sms",)
    credentials_hint: ClassVar[str] = "check api_key and api_secret"

    def __init__(
        self,
        kind: ChannelKind = "sms",
        *,
        api_key: str,
        api_secret: str,
        from_number: str,
        status_callback: str | None = None,
        **options: Unpack[HttpOptions],
    ) -> None:
        self.api_key = require(api_key, "api_key")
        self._secret = require(api_secret, "api_secret")
        self.from_number = require(from_number, "from_number").lstrip("+")
        if status_callback is not None and not status_callback.startswith(("https://", "http://")):
            raise ConfigError("expected a URL", key="status_callback")
        self.status_callback = status_callback
        super().__init__(kind, secrets=(api_secret,), **options)

    def validate(self, message: Message) -> None:
        self.require_phone(message)

    def build_request(self, message: Message) -> HttpRequest:
        form = {
            "api_key": self.api_key,
            "api_secret": self._secret,
            "from": self.from_number,
            "to": message.to.lstrip("+"),
            "text": message.text,
            "type": "text" if is_gsm7(message.text) else "unicode",
            "client-ref": message.key[:40],
        }
        if self.status_callback:
            form["callback"] = self.status_callback
        return HttpRequest("/sms/json", options={"data": form})

    def parse_response(self, message: Message, response: requests.Response) -> Receipt:
        body = self.json_body(response)
        parts = body.get("messages") if isinstance(body, dict) else None
        if not isinstance(parts, list) or not parts:
            raise self.error(SendOutcomeUnknown, "answered without a message status", response)
        failed = [p for p in parts if str(p.get("status")) != "0"]
        if not failed:
            return Receipt(provider=self.provider, provider_id=parts[0].get("message-id"))
        if len(failed) < len(parts):
            raise self.error(
                SendOutcomeUnknown,
                "accepted only some parts of the message",
                response,
                code=str(failed[0].get("status")),
            )
        raise self._part_error(failed[0], response)

    def _part_error(self, part: dict[str, object], response: requests.Response) -> SendError:
        code = str(part.get("status"))
        detail = str(part.get("error-text") or "")
        if code in THROTTLED:
            return self.error(RetryableSendError, "throttled", response, code=code, detail=detail)
        if code in CREDENTIALS:
            return self.refused_credentials(response, code=code, detail=detail)
        if code in NOT_SENT_RETRY_LATER:
            return self.error(
                TransientSendError,
                "did not take the message (account problem)",
                response,
                code=code,
                detail=detail,
            )
        if code in INTERNAL:
            return self.error(
                SendOutcomeUnknown,
                "reported an internal error while processing the message; it is not sent again",
                response,
                code=code,
                detail=detail,
            )
        if code in BARRED:
            return self.error(
                PermanentSendError,
                "the number is barred from receiving messages",
                response,
                code=code,
                detail=detail,
                opted_out=True,
            )
        return self.error(
            PermanentSendError, "refused the message", response, code=code, detail=detail
        )
