"""Why a buyer left a checkout, as they answered: the reason ids, their names, and how an
answer is read. Kept free of imports so ``stats`` and the policy can use it cheaply."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["REASONS", "reason_of"]

REASONS: Mapping[str, str] = {
    "shipping_cost": "shipping cost",
    "price": "price",
    "just_browsing": "just browsing",
    "payment_problem": "payment problem",
    "delivery_time": "delivery time",
    "other": "other",
}
"""Why a buyer left: the reason ids (a WhatsApp list row's id) and how ``stats`` names them.
An SMS answer "1"–"5" is one of the first five, in this order."""
_DIGITS = dict(zip("12345", REASONS, strict=False))


def reason_of(text: str) -> str | None:
    """The reason id an answer names: a digit "1"–"5" alone, or a reason id (a list row's
    id, with or without a ``reason:`` prefix); None for anything else."""
    answer = text.strip().strip(".!)").removeprefix("reason:")
    return _DIGITS.get(answer) or (answer if answer in REASONS else None)
