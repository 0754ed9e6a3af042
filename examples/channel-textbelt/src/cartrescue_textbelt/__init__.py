"""An example third-party channel: SMS through Textbelt (docs.textbelt.com).

``POST {base}/text`` with form fields ``phone`` (E.164), ``message`` and ``key``. Textbelt
answers ``{"success": true, "textId": "...", "quotaRemaining": 40}``, or ``{"success":
false, "error": "..."}`` when it did not send.
"""

from __future__ import annotations

from typing import Any, ClassVar, Unpack

import requests

from cartrescue.plugin import (
    ChannelKind,
    ConfigError,
    HttpChannel,
    HttpOptions,
    HttpRequest,
    HttpSettings,
    Message,
    PermanentSendError,
    PluginSettings,
    Receipt,
    Secret,
    SendError,
    TransientSendError,
)

__all__ = ["TextbeltSMS", "TextbeltSettings"]


class TextbeltSettings(HttpSettings):
    """``[channels.sms]`` with ``type = "textbelt"``: ``key_env`` names the environment
    variable holding the API key; the shared HTTP keys (``rate_limit``, ``concurrency``,
    ``timeout``, ``attempts``, ``base_url``) come from :class:`HttpSettings`."""

    key: Secret


class TextbeltSMS(HttpChannel):
    """Sends SMS with Textbelt. Config: see :class:`TextbeltSettings`."""

    settings_model: ClassVar[type[PluginSettings]] = TextbeltSettings

    provider: ClassVar[str] = "textbelt"
    default_base_url: ClassVar[str | None] = "https://textbelt.com"
    kinds: ClassVar[tuple[ChannelKind, ...]] = ("sms",)
    credentials_hint: ClassVar[str] = "check key"

    def __init__(
        self, kind: ChannelKind = "sms", *, key: str, **options: Unpack[HttpOptions]
    ) -> None:
        if not key:
            raise ConfigError("expected the Textbelt API key", key="key")
        self._key = key
        options.setdefault("rate_limit", 1.0)
        super().__init__(kind, secrets=(key,), **options)

    def validate(self, message: Message) -> None:
        self.require_phone(message)

    def build_request(self, message: Message) -> HttpRequest:
        form = {"phone": message.to, "message": message.text, "key": self._key}
        return HttpRequest("/text", options={"data": form})

    def parse_response(self, message: Message, response: requests.Response) -> Receipt:
        body: Any = self.json_body(response)
        if isinstance(body, dict) and body.get("success") is True:
            return Receipt(provider=self.provider, provider_id=str(body.get("textId")))
        raise self._failure(body, response)

    def _failure(self, body: Any, response: requests.Response) -> SendError:
        error = str(body.get("error", "")) if isinstance(body, dict) else ""
        if "quota" in error.lower():
            return self.error(TransientSendError, "out of quota", response, detail=error)
        return self.error(PermanentSendError, "did not send", response, detail=error)
