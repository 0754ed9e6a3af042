"""What every mapped item must satisfy, and the settings the fuzz properties share."""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from datetime import UTC, datetime

from hypothesis import HealthCheck, settings

from cartrescue.errors import BadPayloadError
from cartrescue.models import Checkout
from cartrescue.store import SQLiteStore

EXAMPLES = int(os.environ.get("CARTRESCUE_FUZZ_EXAMPLES", "400"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.filter_too_much,
    ],
)
TALLY: Counter[str] = Counter()
"""Inputs run per property in this session."""

UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
NOW = datetime(2026, 3, 11, 12, 0, tzinfo=UTC)


def _texts(checkout: Checkout) -> list[str]:
    texts = [checkout.id, checkout.recovery_url, checkout.currency, checkout.name or ""]
    for line in checkout.line_items:
        texts += [line.title, line.variant or "", line.sku or ""]
    if checkout.customer is not None:
        c = checkout.customer
        texts += [
            c.first_name or "",
            c.last_name or "",
            c.email or "",
            c.phone or "",
            c.locale or "",
        ]
    return texts


def assert_usable(checkout: Checkout) -> None:
    """A mapped checkout holds only safe text and can be stored and read back."""
    for text in _texts(checkout):
        assert not UNSAFE.search(text), f"unsafe character kept in {text[:60]!r}"
    data = checkout.to_dict()
    json.dumps(data).encode("utf-8")
    assert Checkout.from_dict(data) == checkout
    # A store of its own: a stored newer version of the same id would (rightly) win.
    with SQLiteStore(":memory:") as store:
        store.upsert_checkout(checkout, NOW)
        assert store.checkout(checkout.id) == checkout


def assert_names_the_problem(err: BadPayloadError) -> None:
    """A refusal names the item and says, briefly, what is wrong."""
    assert err.item, f"no item named in {err}"
    assert err.detail.strip(), "no reason given"
    assert len(str(err)) < 600, f"error message of {len(str(err))} characters"
    assert not UNSAFE.search(str(err).replace("\\", "")), "raw control characters in the message"


def assert_brief(err: BadPayloadError) -> None:
    """A refusal of a whole body says what is wrong in a line, without echoing the body."""
    assert err.detail.strip(), "no reason given"
    assert len(str(err)) < 600, f"error message of {len(str(err))} characters"
