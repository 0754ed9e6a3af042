"""SMS through Twilio's Messages API.

``POST {base}/2010-04-01/Accounts/{AccountSid}/Messages.json`` with form fields ``To``
(E.164), ``Body``, ``From`` or ``MessagingServiceSid`` and optional ``StatusCallback``; HTTP
Basic auth ``AccountSid:AuthToken``. Success is 201 with the Message resource (``sid``,
``status``); an error is ``{"code", "message", "more_info", "status"}``
(twilio.com/docs/messaging/api/message-resource, twilio.com/docs/usage/twilios-response).

Creating a message is not idempotent and Twilio takes no idempotency key, so a read timeout or
a 5xx is an unknown outcome, never retried. A 429 (code 20429) was not processed: retried.
"""

from __future__ import annotations

import re
from typing import ClassVar, Unpack

import requests

from ..errors import ConfigError, PermanentSendError, RetryableSendError, SendError
from ..models import ChannelKind, Message, Receipt
from ..settings.base import PluginSettings
from ..settings.providers import TwilioSettings
from .base import HttpChannel, HttpOptions, HttpRequest, require

__all__ = ["TwilioSMS"]

OPTED_OUT = {21610}
"""Attempt to send to an unsubscribed recipient (they replied STOP)."""
INVALID_RECIPIENT = {21211, 21408, 21612, 21614}
"""Invalid 'To' number; region not enabled; cannot route; not a mobile number."""
THROTTLED = {20429}


class TwilioSMS(HttpChannel):
    """Sends SMS with Twilio.

    Config (``[channels.sms] type = "twilio"``): ``account_sid``, ``auth_token_env``, and
    ``from_number`` (E.164 or an alphanumeric sender ID) or ``messaging_service_sid``;
    optional ``status_callback`` (an https URL Twilio posts delivery status to), plus the
    shared ``rate_limit``, ``concurrency``, ``timeout``, ``attempts``, ``base_url``.

    Error 21610 (the recipient replied STOP) is permanent with ``opted_out``; 21211, 21408,
    21612, 21614 and other 4xx are permanent; 429/20429 is retried.
    """

    settings_model: ClassVar[type[PluginSettings]] = TwilioSettings

    provider: ClassVar[str] = "twilio"
    default_base_url: ClassVar[str | None] = "https://api.twilio.com"
    kinds: ClassVar[tuple[ChannelKind, ...]] = ("sms",)
    credentials_hint: ClassVar[str] = "check account_sid and auth_token"

    def __init__(
        self,
        kind: ChannelKind = "sms",
        *,
        account_sid: str,
        auth_token: str,
        from_number: str | None = None,
        messaging_service_sid: str | None = None,
        status_callback: str | None = None,
        **options: Unpack[HttpOptions],
    ) -> None:
        self.account_sid = require(account_sid, "account_sid")
        if not re.fullmatch(r"AC[0-9a-fA-F]{32}", self.account_sid):
            raise ConfigError("expected 'AC' followed by 32 hex digits", key="account_sid")
        self._auth = (self.account_sid, require(auth_token, "auth_token"))
        if not from_number and not messaging_service_sid:
            raise ConfigError(
                "give from_number or messaging_service_sid (the sender)", key="from_number"
            )
        if messaging_service_sid is not None and not re.fullmatch(
            r"MG[0-9a-fA-F]{32}", messaging_service_sid
        ):
            raise ConfigError(
                "expected 'MG' followed by 32 hex digits", key="messaging_service_sid"
            )
        if status_callback is not None and not status_callback.startswith("https://"):
            raise ConfigError("expected an https:// URL", key="status_callback")
        self.from_number = from_number
        self.messaging_service_sid = messaging_service_sid
        self.status_callback = status_callback
        super().__init__(kind, secrets=(auth_token,), **options)

    def validate(self, message: Message) -> None:
        self.require_phone(message)
        if len(message.text) > 1600:
            raise self.error(PermanentSendError, "the body is longer than 1600 characters")

    def build_request(self, message: Message) -> HttpRequest:
        form = {"To": message.to, "Body": message.text}
        if self.messaging_service_sid:
            form["MessagingServiceSid"] = self.messaging_service_sid
        if self.from_number:
            form["From"] = self.from_number
        if self.status_callback:
            form["StatusCallback"] = self.status_callback
        return HttpRequest(
            f"/2010-04-01/Accounts/{self.account_sid}/Messages.json",
            options={"data": form, "auth": self._auth},
        )

    def check_request(self) -> HttpRequest:
        """Fetch the account resource: read-only, and refused with wrong credentials."""
        return HttpRequest(
            f"/2010-04-01/Accounts/{self.account_sid}.json",
            method="GET",
            options={"auth": self._auth},
        )

    def parse_response(self, message: Message, response: requests.Response) -> Receipt:
        body = self.json_body(response)
        sid = body.get("sid") if isinstance(body, dict) else None
        status = body.get("status") if isinstance(body, dict) else None
        return Receipt(provider=self.provider, provider_id=sid, detail=status)

    def error_for(self, message: Message, response: requests.Response) -> SendError:
        body = self.json_body(response)
        code = body.get("code") if isinstance(body, dict) else None
        detail = str(body.get("message", "")) if isinstance(body, dict) else None
        if code in OPTED_OUT:
            return self.error(
                PermanentSendError,
                "the recipient opted out (replied STOP)",
                response,
                code=code,
                opted_out=True,
            )
        if code in THROTTLED:
            return self.error(RetryableSendError, "too many requests", response, code=code)
        if code in INVALID_RECIPIENT:
            return self.error(
                PermanentSendError, "cannot send to this number", response, code=code, detail=detail
            )
        return self.default_error(message, response, code=code, detail=detail)
