"""The shop's checkout webhooks: ``POST /webhooks/checkouts``.

Shopify ``checkouts/create|update`` and WooCommerce ``order.created|updated``: the connector
checks the platform's signature (403 when it does not match, and for anything unsigned that
cannot be read: never a 500) and maps the body, and the checkout is stored for the next pass,
so new checkouts are known without waiting for a poll.
A payload that cannot be mapped is answered 200 and logged (the platform would only resend
it); WooCommerce's unsigned ping is answered 200. A delivery already taken (the same
``X-Shopify-Webhook-Id`` or ``X-WC-Webhook-Delivery-ID``) is answered 200 and changes nothing,
and a checkout older than the stored version is not stored (the store keeps the newest), so
retried and reordered deliveries cannot undo a newer state.
"""

from __future__ import annotations

import logging

from ..clock import Clock, utc_now
from ..errors import BadPayloadError, ConfigError
from ..http import header_map
from ..inbound import FORBIDDEN, InboundRequest, InboundResponse
from ..logmask import mask_text
from ..store.base import Store
from .base import WebhookCapable

__all__ = ["CheckoutWebhooks"]

log = logging.getLogger("cartrescue.web")

DELIVERY_HEADERS = ("x-shopify-webhook-id", "x-wc-webhook-delivery-id")


class CheckoutWebhooks:
    """The :class:`~cartrescue.inbound.InboundHandler` for a connector's checkout webhooks."""

    route = "/webhooks/checkouts"
    methods = ("POST",)

    def __init__(self, connector: WebhookCapable, store: Store, *, clock: Clock = utc_now) -> None:
        self.connector = connector
        self.store = store
        self.clock = clock

    def handle(self, request: InboundRequest) -> InboundResponse:
        try:
            valid = self.connector.verify_webhook(request.headers, request.body)
        except ConfigError as err:
            log.error("web: checkout webhook refused: %s", err)
            return InboundResponse.text(503, "webhook secret not configured\n")
        except (ValueError, TypeError, UnicodeError) as err:
            # Nothing is authenticated yet: what the caller sent is refused, never a 500.
            log.warning("web: unreadable checkout webhook refused (%s)", type(err).__name__)
            valid = False
        if not valid:
            log.warning("web: checkout webhook with an invalid signature")
            return FORBIDDEN
        headers = header_map(request.headers)
        delivery = next((headers[name] for name in DELIVERY_HEADERS if headers.get(name)), None)
        if delivery and not self.store.record_delivery(
            "shop webhook", delivery.strip()[:200], self.clock()
        ):
            log.info("web: checkout webhook delivered again, ignored")
            return InboundResponse.text(200, "duplicate\n")
        try:
            checkout = self.connector.checkout_from_webhook(request.body)
        except BadPayloadError as err:
            log.info("web: checkout webhook not stored: %s", mask_text(str(err)))
            return InboundResponse.text(200, "ignored\n")
        self.store.upsert_checkout(checkout, self.clock())
        log.info("web: checkout %s stored from a webhook", checkout.id)
        return InboundResponse.text(200, "stored\n")
