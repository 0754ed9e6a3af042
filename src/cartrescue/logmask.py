"""Masking of personal data in log lines: phone numbers and email addresses."""

from __future__ import annotations

import re

__all__ = ["mask_contact", "mask_email", "mask_phone", "mask_text"]

_EMAIL = re.compile(r"([A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]*@([A-Za-z0-9.\-]+)")
_PHONE = re.compile(r"\+?\d[\d\s\-().]{6,}\d")


def mask_phone(phone: str) -> str:
    """``+4791234567`` → ``+47******67``: country code and last two digits stay."""
    digits = phone.lstrip("+")
    if len(digits) <= 4:
        return "*" * len(phone)
    prefix = "+" if phone.startswith("+") else ""
    return f"{prefix}{digits[:2]}{'*' * (len(digits) - 4)}{digits[-2:]}"


def mask_email(email: str) -> str:
    """``kari.nordmann@example.no`` → ``k***@example.no``."""
    local, at, domain = email.rpartition("@")
    if not at:
        return "***"
    return f"{local[:1]}***@{domain}"


def mask_contact(contact: str | None) -> str:
    """Mask an email or a phone number, whichever ``contact`` is."""
    if not contact:
        return "-"
    return mask_email(contact) if "@" in contact else mask_phone(contact)


def mask_text(text: str) -> str:
    """Mask every email address and phone-like number found in free text."""
    text = _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)
    return _PHONE.sub(lambda m: mask_phone(re.sub(r"[^\d+]", "", m.group(0))), text)
