"""Masking of personal data in log lines: phone numbers and email addresses.

:func:`mask_text` masks what *is* an email address or a phone number and leaves everything
else alone (IP addresses, dates, timestamps, order ids, amounts). It runs in linear time:
the text is truncated first (``limit``), emails are found from their ``@`` (or ``%40``) with
bounded look-around, and phone numbers are checked by phonenumbers' matcher only on short
candidates a cheap pattern pre-selects.
"""

from __future__ import annotations

import re

import phonenumbers

__all__ = ["MASK_LIMIT", "mask_contact", "mask_email", "mask_phone", "mask_text"]

MASK_LIMIT = 4000
"""Characters of free text :func:`mask_text` keeps (a log line needs no more)."""

_AT = re.compile(r"@|%40", re.IGNORECASE)
# The local part, read backwards from the "@": letters of any script, digits and the
# punctuation addresses use; percent escapes (%2B) too. At most 64 characters (RFC 5321).
_LOCAL = re.compile(r"(?:[^\W_]|[._+'\-]|%[0-9A-Fa-f]{2})+\Z")
_LOCAL_MAX = 64
# The domain: dot-separated labels of any script (IDN) or punycode, a TLD of letters.
_DOMAIN = re.compile(r"(?:[^\W_](?:[\w\-]{0,61}[^\W_])?\.)+(?:[^\W\d_]{2,63}|xn--[\w\-]{1,59})")
_DOMAIN_MAX = 253
# Phone candidates: a "+" (or its escape %2B) and 6 to 30 digits and separators, not glued
# to a word or a longer number. Only these reach phonenumbers' matcher.
_PHONE_CANDIDATE = re.compile(
    r"(?<![\w+%])(?:\+|%2[Bb])\s?\(?\d[\d\s./()\-]{4,28}\d(?![\d])",
)
# A number without "+" is a phone only where the text says so: after "to", "phone", "msisdn"
# and the like (providers echo E.164 without "+": "Invalid to address: 4790000001").
_BARE_PHONE = re.compile(
    r"(?i)\b(?:to|from|phone|msisdn|number|wa_id|recipient|address|tel|mobile|sender|"
    r"destination)[\"']?\s*[:=]?\s*[\"']?(\d{8,15})(?!\d)"
)
_SEPARATORS = str.maketrans({"/": " ", ".": " "})


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


def _emails(text: str) -> list[tuple[int, int, str]]:
    spans: list[tuple[int, int, str]] = []
    floor = 0
    for at in _AT.finditer(text):
        start = max(floor, at.start() - _LOCAL_MAX)
        local = _LOCAL.search(text, start, at.start())
        if local is None:
            continue
        domain = _DOMAIN.match(text, at.end(), at.end() + _DOMAIN_MAX)
        if domain is None:
            continue
        spans.append((local.start(), domain.end(), f"{text[local.start()]}***@{domain.group()}"))
        floor = domain.end()
    return spans


def _phones(text: str) -> list[tuple[int, int, str]]:
    spans: list[tuple[int, int, str]] = []
    for candidate in _PHONE_CANDIDATE.finditer(text):
        raw = candidate.group()
        if raw[0] == "%":
            raw = "+  " + raw[3:]  # same length, so the matcher's offsets still fit
        raw = raw.translate(_SEPARATORS)
        for match in phonenumbers.PhoneNumberMatcher(
            raw, None, leniency=phonenumbers.Leniency.POSSIBLE
        ):
            e164 = phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164)
            start = candidate.start() + match.start
            spans.append((start, candidate.start() + match.end, mask_phone(e164)))
    for bare in _BARE_PHONE.finditer(text):
        digits = bare.group(1)
        for match in phonenumbers.PhoneNumberMatcher(
            f"+{digits}", None, leniency=phonenumbers.Leniency.VALID
        ):
            e164 = phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164)
            spans.append((bare.start(1), bare.end(1), mask_phone(e164)[1:]))
    return spans


def mask_text(text: str, *, limit: int | None = MASK_LIMIT) -> str:
    """Mask every email address and phone number found in free text.

    The text is cut to ``limit`` characters first (``None``: keep it whole); the rest would
    only make a log line longer. Emails may have non-ASCII local parts and domains, or an
    escaped ``%40``; phone numbers must be international (``+47 912 34 567``,
    ``+47/912/34/567``, ``%2B4791234567``), or E.164 digits without ``+`` right after a word
    such as ``to``, ``phone`` or ``msisdn``. IPs, dates, ids and amounts stay as they are.
    """
    if limit is not None and len(text) > limit:
        text = text[:limit] + "…"
    spans = sorted(_emails(text) + _phones(text))
    out: list[str] = []
    at = 0
    for start, end, masked in spans:
        if start < at:
            continue
        out.append(text[at:start])
        out.append(masked)
        at = end
    out.append(text[at:])
    return "".join(out)
