"""WhatsApp template messages through Meta's WhatsApp Cloud API (Graph API).

``POST {base}/{version}/{phone-number-id}/messages`` with ``Authorization: Bearer <token>``
and ``{"messaging_product": "whatsapp", "to", "type": "template", "template": {"name",
"language": {"code"}, "components": [image header, body parameters, URL-button
parameter]}}``; an image header parameter is ``{"type": "header", "parameters": [{"type":
"image", "image": {"link": "https://…"}}]}`` (Meta fetches the link, so it must be public
HTTPS). Success is
``{"contacts": [{"wa_id"}], "messages": [{"id": "wamid..."}]}``; an error is ``{"error":
{"message", "type", "code", "error_data": {"details"}, "fbtrace_id"}}``
(developers.facebook.com/docs/whatsapp/cloud-api, .../support/error-codes).

Outside the 24-hour customer-service window only approved templates may be sent; inside it
(a buyer's message opened it) a free-form ``"type": "text"`` message may answer them
(:attr:`~cartrescue.models.Content.free_form`). A cart reminder is a Marketing template,
and since 2025-04-01 Meta does not deliver Marketing templates to US numbers, so those are
refused before sending. The Graph API takes no
idempotency key: the message key goes out as ``biz_opaque_callback_data``, which Meta echoes
in status webhooks (see :mod:`cartrescue.web`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Literal, Unpack

import phonenumbers
import requests

from ..errors import (
    ConfigError,
    PermanentSendError,
    RetryableSendError,
    SendError,
    SendOutcomeUnknown,
    TransientSendError,
)
from ..models import ChannelKind, Message, Receipt, image_url
from ..render import _WHATSAPP_NAME as _TEMPLATE_NAME
from ..render import WHATSAPP_PARAMETER_LIMIT
from ..settings.base import PluginSettings
from ..settings.providers import WhatsAppSettings
from .base import HttpChannel, HttpOptions, HttpRequest, require

__all__ = ["WhatsAppCloud", "whatsapp_error"]

OPTED_OUT = {131050}
"""The user stopped marketing messages from this business."""
SKIP_STEP = {131049}
"""Not delivered "to maintain healthy ecosystem engagement": the per-user marketing cap."""
RETRY_NOW = {4, 80007, 130429}
"""Application / WABA / Cloud API throughput limits."""
RETRY_LATER = {131048, 131056, 368, 131031, 131042, 133010}
"""Spam-rate and pair-rate limits, account restrictions, payment and registration problems:
the message was not sent; a later pass may send it."""
CREDENTIALS = {0, 10, 190}
"""Authentication, permission, expired access token."""
MAYBE_SENT = {1, 2, 131000, 131016}
"""Unknown or service errors: the message may have been taken."""


TEXT_LIMIT = 4096
"""The most characters a free-form text message's body may hold."""


def whatsapp_error(code: int) -> tuple[str, dict[str, bool]]:
    """How a Cloud API error code is handled: ``("permanent" | "retry" | "later" |
    "credentials" | "unknown", flags)``; flags are ``opted_out`` / ``skip_step``. Used for
    synchronous errors here and for failed statuses in webhooks."""
    if code in OPTED_OUT:
        return "permanent", {"opted_out": True}
    if code in SKIP_STEP:
        return "permanent", {"skip_step": True}
    if code in RETRY_NOW:
        return "retry", {}
    if code in RETRY_LATER:
        return "later", {}
    if code in CREDENTIALS:
        return "credentials", {}
    if code in MAYBE_SENT:
        return "unknown", {}
    return "permanent", {}


def _is_us(number: str) -> bool:
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.region_code_for_number(parsed) == "US"


class WhatsAppCloud(HttpChannel):
    """Sends approved WhatsApp templates through the Cloud API.

    Config (``[channels.whatsapp] type = "whatsapp"``): ``phone_number_id``,
    ``access_token_env``, optional ``api_version`` (``"v23.0"``), ``default_language``
    (used when the rendered content names none), ``template_category`` (``"marketing"``,
    the default, or ``"utility"``), ``template_names`` (the rendered template's name → the
    name it was approved under, e.g. one per offer kind), plus the shared ``rate_limit``,
    ``concurrency``, ``timeout``, ``attempts``, ``base_url``.

    The rendered :class:`~cartrescue.models.Content` gives the template ``template``,
    ``language``, body ``parameters``, the URL-button ``button_parameter`` and the image
    header's ``header_image`` (sent only when the template gives one). Errors:
    131050 (the user stopped marketing messages) → permanent with ``opted_out``; 131049
    (per-user marketing cap) → permanent with ``skip_step``; 131047 (outside the 24 h
    window), 131026 (undeliverable) and other request errors → permanent; 130429 / 80007 /
    4 (throughput) → retried; 131048, 131056 and account problems → transient.
    """

    settings_model: ClassVar[type[PluginSettings]] = WhatsAppSettings

    provider: ClassVar[str] = "whatsapp"
    default_base_url: ClassVar[str | None] = "https://graph.facebook.com"
    kinds: ClassVar[tuple[ChannelKind, ...]] = ("whatsapp",)
    credentials_hint: ClassVar[str] = (
        "check access_token and its whatsapp_business_messaging permission"
    )

    def __init__(
        self,
        kind: ChannelKind = "whatsapp",
        *,
        phone_number_id: str,
        access_token: str,
        api_version: str = "v23.0",
        default_language: str = "en",
        template_category: Literal["marketing", "utility"] = "marketing",
        template_names: Mapping[str, str] | None = None,
        **options: Unpack[HttpOptions],
    ) -> None:
        self.phone_number_id = require(phone_number_id, "phone_number_id")
        if not self.phone_number_id.isdigit():
            raise ConfigError(
                "expected the numeric phone number ID from WhatsApp Manager (not the phone "
                "number itself)",
                key="phone_number_id",
            )
        self._token = require(access_token, "access_token")
        self.api_version = require(api_version, "api_version")
        if not api_version.startswith("v"):
            raise ConfigError("expected a Graph API version such as 'v23.0'", key="api_version")
        self.default_language = require(default_language, "default_language")
        if template_category not in ("marketing", "utility"):
            raise ConfigError("expected 'marketing' or 'utility'", key="template_category")
        self.template_category = template_category
        self.template_names = dict(template_names or {})
        for rendered, approved in self.template_names.items():
            if not _TEMPLATE_NAME.match(rendered) or not _TEMPLATE_NAME.match(approved):
                raise ConfigError(
                    f"{rendered!r} = {approved!r}: template names are lower-case letters, "
                    "digits and underscores",
                    key="template_names",
                )
        super().__init__(kind, secrets=(access_token,), **options)

    def validate(self, message: Message) -> None:
        self.require_phone(message)
        if message.content.free_form:
            if not message.content.text.strip() or len(message.content.text) > TEXT_LIMIT:
                raise self.error(
                    PermanentSendError,
                    f"a free-form text must hold 1 to {TEXT_LIMIT} characters; not sent",
                )
            return
        if not message.content.template:
            raise self.error(
                PermanentSendError,
                "no template name was rendered; WhatsApp reminders must use an approved template",
            )
        for number, value in enumerate(message.content.parameters, start=1):
            if len(value) > WHATSAPP_PARAMETER_LIMIT:
                raise self.error(
                    PermanentSendError,
                    f"parameter {number} is {len(value)} characters; WhatsApp allows "
                    f"{WHATSAPP_PARAMETER_LIMIT}; not sent",
                )
        header = message.content.header_image
        if header is not None and image_url(header) != header:
            raise self.error(
                PermanentSendError,
                "the image header's link is not an https:// URL (Meta fetches only public "
                "HTTPS links); not sent",
            )
        if self.template_category == "marketing" and _is_us(message.to):
            raise self.error(
                PermanentSendError,
                "Meta does not deliver marketing templates to US (+1) numbers since 2025-04-01; "
                "not sent",
            )

    def build_request(self, message: Message) -> HttpRequest:
        content = message.content
        if content.free_form:
            return self._request(
                message, {"type": "text", "text": {"preview_url": False, "body": content.text}}
            )
        components: list[dict[str, object]] = []
        if content.header_image:
            # a template registered with an IMAGE header takes its picture per message
            components.append(
                {
                    "type": "header",
                    "parameters": [{"type": "image", "image": {"link": content.header_image}}],
                }
            )
        if content.parameters:
            components.append(
                {
                    "type": "body",
                    "parameters": [{"type": "text", "text": p} for p in content.parameters],
                }
            )
        if content.button_parameter:
            components.append(
                {
                    "type": "button",
                    "sub_type": "url",
                    "index": "0",
                    "parameters": [{"type": "text", "text": content.button_parameter}],
                }
            )
        language = (content.language or self.default_language).replace("-", "_")
        name = self.template_names.get(content.template or "", content.template)
        template: dict[str, object] = {"name": name, "language": {"code": language}}
        if components:
            template["components"] = components
        return self._request(message, {"type": "template", "template": template})

    def _request(self, message: Message, what: dict[str, object]) -> HttpRequest:
        body = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": message.to.lstrip("+"),
            **what,
            "biz_opaque_callback_data": message.key,
        }
        return HttpRequest(
            f"/{self.api_version}/{self.phone_number_id}/messages",
            options={"json": body, "headers": {"Authorization": f"Bearer {self._token}"}},
        )

    def check_request(self) -> HttpRequest:
        """Fetch the business phone number: read-only; fails with a wrong token or id."""
        return HttpRequest(
            f"/{self.api_version}/{self.phone_number_id}",
            method="GET",
            options={"headers": {"Authorization": f"Bearer {self._token}"}},
        )

    def parse_response(self, message: Message, response: requests.Response) -> Receipt:
        body = self.json_body(response)
        sent = body.get("messages") if isinstance(body, dict) else None
        if not isinstance(sent, list) or not sent or not isinstance(sent[0], dict):
            raise self.error(SendOutcomeUnknown, "answered without a message id", response)
        return Receipt(
            provider=self.provider,
            provider_id=sent[0].get("id"),
            detail=sent[0].get("message_status"),
        )

    def error_for(self, message: Message, response: requests.Response) -> SendError:
        body = self.json_body(response)
        error = body.get("error") if isinstance(body, dict) else None
        if not isinstance(error, dict) or not isinstance(error.get("code"), int):
            return self.default_error(message, response)
        number: int = error["code"]
        data = error.get("error_data")
        text = str(
            (data.get("details") if isinstance(data, dict) else None) or error.get("message") or ""
        )
        handling, flags = whatsapp_error(number)
        if handling == "retry":
            return self.error(RetryableSendError, "rate limited", response, code=number)
        if handling == "later":
            return self.error(
                TransientSendError, "did not send now", response, code=number, detail=text
            )
        if handling == "unknown" or response.status_code >= 500:
            return self._maybe_sent(message, f"reported error {number}", response)
        if handling == "credentials":
            return self.refused_credentials(response, code=number, detail=text)
        return self.error(
            PermanentSendError, "refused the message", response, code=number, detail=text, **flags
        )
