"""Providers' status callbacks and inbound messages, built and signed the way each provider
documents it, written here from the documentation and not from cartrescue's own verifiers (a
test that signs with the code under test proves nothing).

Each function returns a :class:`Callback`: the path under ``public_url``, the method, the
headers and the body, ready for a WSGI call or :meth:`Callback.post` to a running server.

- Twilio (twilio.com/docs/usage/security): ``X-Twilio-Signature`` = base64 HMAC-SHA1 keyed
  with the auth token over the full URL followed by each POST parameter's name and value,
  sorted by name. Status callbacks carry ``MessageSid`` and ``MessageStatus``.
- WhatsApp Cloud API: ``X-Hub-Signature-256: sha256=`` hex HMAC-SHA256 of the raw body keyed
  with the app secret; statuses arrive under ``entry[].changes[].value.statuses[]``.
- Vonage SMS API delivery receipts (developer.vonage.com, signing messages): ``sig`` over
  ``&name=value`` of every other parameter sorted by name (``&`` and ``=`` in values become
  ``_``); ``md5hash`` appends the secret and takes MD5, the others are HMACs.
- LINK Mobility Common API: gates deliver JSON with HTTP Basic auth (the only authentication
  a gate's destination has); delivery reports and MO messages shaped as the "SMS REST API"
  documents show them.

Part of the ``cartrescue-testing`` distribution.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlencode

import requests

__all__ = [
    "Callback",
    "linkmobility_delivery_report",
    "linkmobility_mo",
    "twilio_status",
    "vonage_receipt",
    "whatsapp_statuses",
]


@dataclass(frozen=True, slots=True)
class Callback:
    """One request a provider makes."""

    path: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    method: str = "POST"
    query: str = ""

    def post(self, base_url: str, *, timeout: float = 10) -> requests.Response:
        """Send it to a running server at ``base_url`` (its root, without the path)."""
        url = base_url.rstrip("/") + self.path + (f"?{self.query}" if self.query else "")
        return requests.request(
            self.method, url, data=self.body, headers=dict(self.headers), timeout=timeout
        )

    def tampered(self) -> Callback:
        """The same request with one byte of the body changed, signature kept."""
        body = bytearray(self.body)
        body[-2] ^= 1
        return Callback(self.path, bytes(body), self.headers, self.method, self.query)


def twilio_status(
    auth_token: str, public_url: str, sid: str, status: str, *, to: str = "+4791234567"
) -> Callback:
    """A status callback for message ``sid``, as Twilio posts to ``<public_url>/twilio/status``."""
    params = {
        "AccountSid": "AC" + "0" * 32,
        "ApiVersion": "2010-04-01",
        "From": "+4790000000",
        "MessageSid": sid,
        "MessageStatus": status,
        "SmsSid": sid,
        "SmsStatus": status,
        "To": to,
    }
    if status in ("failed", "undelivered"):
        params["ErrorCode"] = "30003"
    url = public_url.rstrip("/") + "/twilio/status"
    data = url + "".join(name + params[name] for name in sorted(params))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return Callback(
        "/twilio/status",
        urlencode(params).encode(),
        {
            "X-Twilio-Signature": base64.b64encode(digest).decode(),
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )


def whatsapp_statuses(
    app_secret: str,
    statuses: Sequence[tuple[str, str]],
    *,
    at: datetime,
    recipient: str,
    callback_data: Mapping[str, str] | None = None,
) -> Callback:
    """One notification with a status per (message id, status), as Meta posts it;
    ``callback_data`` maps a message id to the ``biz_opaque_callback_data`` it was sent with."""
    items: list[dict[str, object]] = []
    for message_id, status in statuses:
        item: dict[str, object] = {
            "id": message_id,
            "status": status,
            "timestamp": str(int(at.timestamp())),
            "recipient_id": recipient.lstrip("+"),
        }
        if callback_data and message_id in callback_data:
            item["biz_opaque_callback_data"] = callback_data[message_id]
        if status == "failed":
            item["errors"] = [{"code": 131026, "title": "Message undeliverable"}]
        items.append(item)
    payload = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "15550783881",
                                "phone_number_id": "106540352242922",
                            },
                            "statuses": items,
                        },
                    }
                ],
            }
        ],
    }
    body = json.dumps(payload).encode()
    signature = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return Callback(
        "/whatsapp",
        body,
        {"X-Hub-Signature-256": f"sha256={signature}", "Content-Type": "application/json"},
    )


def vonage_receipt(
    secret: str,
    message_id: str,
    status: str,
    *,
    at: datetime,
    method: str = "md5hash",
    as_json: bool = False,
    to: str = "4791234567",
) -> Callback:
    """A signed SMS API delivery receipt (``POST``, form or JSON) to ``/vonage/dlr``."""
    params = {
        "msisdn": to,
        "to": "Shop",
        "network-code": "24201",
        "messageId": message_id,
        "price": "0.03330000",
        "status": status,
        "scts": at.strftime("%y%m%d%H%M"),
        "err-code": "0" if status in ("delivered", "accepted", "buffered") else "1",
        "api-key": "abcd1234",
        "message-timestamp": at.strftime("%Y-%m-%d %H:%M:%S"),
        "timestamp": str(int(at.timestamp())),
        "nonce": secrets.token_hex(8),
    }
    text = "".join(
        f"&{name}={params[name].replace('&', '_').replace('=', '_')}" for name in sorted(params)
    )
    if method == "md5hash":
        sig = hashlib.md5((text + secret).encode(), usedforsecurity=False).hexdigest()
    else:
        sig = hmac.new(secret.encode(), text.encode(), method).hexdigest()
    params["sig"] = sig
    if as_json:
        return Callback(
            "/vonage/dlr", json.dumps(params).encode(), {"Content-Type": "application/json"}
        )
    return Callback(
        "/vonage/dlr",
        urlencode(params).encode(),
        {"Content-Type": "application/x-www-form-urlencoded"},
    )


def _gate(username: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}", "Content-Type": "application/json"}


def linkmobility_delivery_report(
    username: str,
    password: str,
    message_id: str,
    result_code: int,
    *,
    at: datetime,
    ref_id: str | None = None,
) -> Callback:
    """A delivery report for ``message_id`` (``abc$0`` for a part), as a gate posts it."""
    stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    report = {
        "refId": ref_id,
        "id": message_id,
        "operator": "no.telenor",
        "sentTimestamp": stamp,
        "timestamp": stamp,
        "resultCode": result_code,
        "operatorResultCode": "2",
        "segments": 1,
        "gateCustomParameters": {},
        "customParameters": {"received": at.strftime("%Y-%m-%d %H:%M:%S")},
    }
    return Callback("/linkmobility/dlr", json.dumps(report).encode(), _gate(username, password))


def linkmobility_mo(
    username: str, password: str, source: str, text: str, message_id: str, *, at: datetime
) -> Callback:
    """An MO message from ``source`` to a keyword on a short number, as a gate posts it."""
    stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    message = {
        "destination": "NO-2333",
        "subNumber": None,
        "source": source,
        "content": {"type": "SMS", "userData": text, "encoding": "TEXT"},
        "operator": "no.telenor",
        "timestamp": stamp,
        "messageId": message_id,
        "operatorTimestamp": stamp,
        "operatorMessageId": "0",
        "route": {
            "type": "KEYWORD_ROUTE",
            "id": "0",
            "refId": "Cart reminders",
            "gateIds": ["0"],
            "platformId": "SMSC",
            "platformPartnerId": "0",
            "number": "NO-2333",
            "keyword": text.split()[0].upper() if text.split() else "",
            "keywordType": "FIRST_WORD",
            "active": True,
            "shared": False,
        },
        "gateCustomParameters": {},
        "customParameters": {"platformId": "SMSC", "suggestedOperator": "no.telenor"},
    }
    return Callback("/linkmobility/sms", json.dumps(message).encode(), _gate(username, password))
