"""The Connector protocol: how cartrescue reads a shop.

A connector needs only ``name`` and ``abandoned_checkouts``. The optional capabilities below
are found by the engine with ``isinstance`` checks, so a connector implements the ones its
platform supports and nothing else. A connector from another package registers under the
entry-point group ``cartrescue.connectors``::

    [project.entry-points."cartrescue.connectors"]
    myshop = "myshop_cartrescue:MyShopConnector"

and is then configured in ``cartrescue.toml`` as ``[connector] type = "myshop"``; the other
keys of that table are passed to its constructor as keyword arguments (a key ending in
``_env`` is read from the environment variable it names and passed without the suffix).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from ..errors import BadPayloadError, ConnectorError
from ..models import BadCheckout, Checkout, CustomerHistory, Discount, DiscountOffer, Purchase

log = logging.getLogger("cartrescue.connectors")

__all__ = [
    "BulkPurchaseLookup",
    "Connector",
    "CustomerHistoryLookup",
    "DiscountCapable",
    "HistoryCheck",
    "PurchaseCheck",
    "PurchaseLookup",
    "ShopTimezone",
    "WebhookCapable",
    "webhook_object",
]


@runtime_checkable
class Connector(Protocol):
    """Reads abandoned checkouts from one shop.

    ``name`` is a short, stable identifier (``"shopify"``) used in logs and as the key of the
    connector's watermark in the store.

    ``abandoned_checkouts(since)`` yields every checkout that was started and not paid and
    was created or changed after ``since`` (``None``: the connector's own notion of "all
    recent"). It must be a generator that fetches page by page, so memory stays flat. It
    yields a :class:`~cartrescue.models.BadCheckout` for an item it cannot map instead of
    raising, so one bad payload does not end the pass. It raises
    :class:`~cartrescue.errors.ConnectorError` (or ``ConnectorAuthError``) when the platform
    cannot be read at all, after the retries that were safe to make. It may yield checkouts
    that are already completed (``completed_at`` set): the engine counts them as converted.

    A connector whose reads wait on the network can say ``read_ahead = True`` (a class
    attribute): the engine then runs ``abandoned_checkouts`` in a thread of its own, a page
    ahead, so the next page is on its way while the last one is stored, decided and sent.
    The engine still never calls the connector from two threads at once. Leave it out when
    the iterator must stay in the thread that made it (a database handle bound to it).
    """

    name: str

    def abandoned_checkouts(self, since: datetime | None) -> Iterator[Checkout | BadCheckout]: ...


@runtime_checkable
class PurchaseLookup(Protocol):
    """Capability: has this contact bought since the checkout was abandoned?

    The engine calls ``find_purchase`` just before it sends a message and caches the answer
    for the pass. Return the order found (``same_checkout=True`` when it is this checkout,
    paid), or ``None``. Raise ``ConnectorError`` when the platform cannot be asked; the
    engine then holds the message rather than risk messaging a buyer.
    """

    def find_purchase(self, checkout: Checkout) -> Purchase | None: ...


PurchaseCheck = Purchase | None | ConnectorError
"""One checkout's purchase check: the order found, ``None`` (no purchase), or why the
platform could not say (the engine then holds that checkout's message)."""


@runtime_checkable
class BulkPurchaseLookup(Protocol):
    """Capability: :class:`PurchaseLookup` for many checkouts in few requests.

    ``find_purchases(checkouts)`` answers for every checkout given (typically one page of the
    pass) with what ``find_purchase`` would answer for it, keyed by checkout id: the
    ``Purchase`` found, ``None``, or the ``ConnectorError`` that one checkout's check ended
    with. Raise ``ConnectorError`` when the platform cannot be asked at all. A connector
    implementing this also implements ``find_purchase``; use :func:`find_purchases` to ask
    either kind.
    """

    def find_purchases(self, checkouts: Sequence[Checkout]) -> dict[str, PurchaseCheck]: ...


def find_purchases(connector: object, checkouts: Sequence[Checkout]) -> dict[str, PurchaseCheck]:
    """Purchase checks for ``checkouts``, keyed by checkout id, in as few requests as the
    connector allows: one ``find_purchases`` call when it is a :class:`BulkPurchaseLookup`,
    else ``find_purchase`` per checkout; ``None`` for each when it can do neither. A
    ``ConnectorError`` is returned for the checkouts it concerns, never raised."""
    if isinstance(connector, BulkPurchaseLookup):
        try:
            found = connector.find_purchases(checkouts)
        except ConnectorError as err:
            return {checkout.id: err for checkout in checkouts}
        except Exception as err:  # a malformed answer must not end the pass: ask one by one
            log.warning("bulk purchase check failed (%s); asking one by one", type(err).__name__)
            found = {}
        else:
            missing = ConnectorError("the connector gave no answer for this checkout")
            return {checkout.id: found.get(checkout.id, missing) for checkout in checkouts}
    if not isinstance(connector, PurchaseLookup):
        return {checkout.id: None for checkout in checkouts}
    answers: dict[str, PurchaseCheck] = {}
    for checkout in checkouts:
        try:
            answers[checkout.id] = connector.find_purchase(checkout)
        except ConnectorError as err:
            answers[checkout.id] = err
        except Exception as err:  # one malformed answer is that checkout's failed check
            answers[checkout.id] = ConnectorError(
                f"the purchase check failed: {type(err).__name__}"
            )
    return answers


HistoryCheck = CustomerHistory | None | ConnectorError
"""One customer's history: what the shop knows, ``None`` (a guest the shop cannot look up),
or why the platform could not say (segments on history then do not match that cart)."""


@runtime_checkable
class CustomerHistoryLookup(Protocol):
    """Capability: the order history of the people behind a page of checkouts.

    ``customer_histories(checkouts)`` answers for every checkout given with its buyer's
    :class:`~cartrescue.models.CustomerHistory` (paid orders, amount spent, last order
    date), keyed by checkout id, in as few requests as the platform allows; the engine
    passes one checkout per person and caches the answers for the pass. Answer ``None`` for
    a checkout whose buyer cannot be looked up, or the ``ConnectorError`` that one lookup
    ended with; raise ``ConnectorError`` when the platform cannot be asked at all. The
    engine calls it only when a segment needs history (``rfm`` or ``customer``).
    """

    def customer_histories(self, checkouts: Sequence[Checkout]) -> dict[str, HistoryCheck]: ...


@runtime_checkable
class DiscountCapable(Protocol):
    """Capability: create a unique, single-use discount code for one checkout.

    Called only when a message that offers a discount is about to be sent. Return the
    :class:`~cartrescue.models.Discount` with the code and, where the platform can apply a
    code through a link, the recovery URL that applies it. Raise ``ConnectorError`` on
    failure; the engine then sends the message without a discount.
    """

    def create_discount(self, checkout: Checkout, offer: DiscountOffer) -> Discount: ...


@runtime_checkable
class ShopTimezone(Protocol):
    """Capability: the shop's IANA time zone, the last fallback for quiet hours."""

    def shop_timezone(self) -> str | None: ...


@runtime_checkable
class WebhookCapable(Protocol):
    """Capability: take pushed checkouts instead of polling.

    ``verify_webhook`` checks the platform's signature over the raw body in constant time
    and returns whether it is valid. ``checkout_from_webhook`` maps a verified payload to a
    ``Checkout`` (raising :class:`~cartrescue.errors.BadPayloadError` when it cannot).
    """

    def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> bool: ...

    def checkout_from_webhook(self, body: bytes) -> Checkout: ...


def webhook_object(body: bytes, what: str = "a checkout") -> Mapping[str, Any]:
    """The JSON object a webhook body holds, for ``checkout_from_webhook``.

    Raises :class:`~cartrescue.errors.BadPayloadError` when the body is not JSON (or not
    UTF-8, or nested too deeply to read) or holds something other than an object.
    """
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as err:
        raise BadPayloadError(f"webhook body is not JSON: {str(err)[:80]}") from None
    if not isinstance(data, dict):
        raise BadPayloadError(f"webhook body is not {what} object")
    return data
