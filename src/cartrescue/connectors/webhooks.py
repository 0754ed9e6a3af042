"""The shop's checkout webhooks: ``POST /webhooks/checkouts``.

Shopify ``checkouts/create|update`` and WooCommerce ``order.created|updated``: the connector
checks the platform's signature (401 when it does not match) and maps the body, and the
checkout is stored for the next pass, so new checkouts are known without waiting for a poll.
A payload that cannot be mapped is answered 200 and logged (the platform would only resend
it); WooCommerce's unsigned ping is answered 200.
"""

from __future__ import annotations

import logging

from ..clock import Clock, utc_now
from ..errors import BadPayloadError, ConfigError
from ..inbound import InboundRequest, InboundResponse
from ..logmask import mask_text
from ..store.base import Store
from .base import WebhookCapable

__all__ = ["CheckoutWebhooks"]

log = logging.getLogger("cartrescue.web")


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
        if not valid:
            log.warning("web: checkout webhook with an invalid signature")
            return InboundResponse.text(401, "invalid signature\n")
        try:
            checkout = self.connector.checkout_from_webhook(request.body)
        except BadPayloadError as err:
            log.info("web: checkout webhook not stored: %s", mask_text(str(err)))
            return InboundResponse.text(200, "ignored\n")
        self.store.upsert_checkout(checkout, self.clock())
        log.info("web: checkout %s stored from a webhook", checkout.id)
        return InboundResponse.text(200, "stored\n")
