"""How long an SMS is, the way providers bill it (3GPP TS 23.038), and smart encoding.

A message is sent in GSM-7 when every character is in the GSM 7-bit default alphabet or its
extension table, else in UCS-2. One message holds 140 octets: 160 septets or 70 UTF-16 code
units. A longer message is concatenated: each part gives 6 octets to the user data header and
holds 153 septets or 67 units. An extension character is an escape pair (two septets), an
emoji outside the Basic Multilingual Plane a surrogate pair (two units), and neither is ever
split across two parts, nor is a grapheme (a letter and its combining marks, an emoji
sequence): a part then holds 152 septets or 66 units. National language shift tables are not
used, because the providers do not send with them.

This is how Twilio counts: its reference calculator (TwilioDevEd/message-segment-calculator)
keeps whole graphemes in one part and counts CR LF as two characters, and its maintainers
checked it against billed ``num_segments`` on live messages (issue 66 there: 160/161 ``a``,
70/71 ``中``, CR LF, decomposed ``é``, curly quotes with and without smart encoding); 153
``]`` are billed as three parts (issue 39), because no part splits an escape pair.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

__all__ = [
    "GSM7_BASIC",
    "GSM7_EXTENSION",
    "Encoding",
    "SmsLength",
    "fits",
    "is_gsm",
    "may_become_gsm",
    "measure",
    "non_gsm_characters",
    "parts",
    "size",
    "to_gsm",
]

Encoding = Literal["GSM-7", "UCS-2"]

GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
"""The default alphabet, indexed by septet value (0x1B is the escape to the extension table,
not a character one can send)."""

GSM7_EXTENSION = "\f^{}\\[~]|€"
"""Characters of the extension table: each is sent as an escape pair, two septets."""

_BASIC = frozenset(GSM7_BASIC) - {"\x1b"}
_EXTENSION = frozenset(GSM7_EXTENSION)
_GSM = _BASIC | _EXTENSION

SINGLE: dict[Encoding, int] = {"GSM-7": 160, "UCS-2": 70}
"""Units one message holds."""
PART: dict[Encoding, int] = {"GSM-7": 153, "UCS-2": 67}
"""Units each part of a concatenated message holds."""


@lru_cache(maxsize=1)
def _grapheme_pattern() -> Any:
    """Graphemes (``regex``'s ``\\X``); imported on first use, only a long UCS-2 text needs
    it."""
    import regex

    return regex.compile(r"\X")


@dataclass(frozen=True, slots=True)
class SmsLength:
    """The length of a message as it is billed.

    ``units`` are septets for GSM-7 (an extension character counts 2) or UTF-16 code units for
    UCS-2 (an emoji outside the BMP counts 2); ``segments`` is how many messages are billed.
    """

    encoding: Encoding
    units: int
    segments: int

    @property
    def limit(self) -> int:
        """The units one message holds in this encoding (160 or 70)."""
        return SINGLE[self.encoding]

    def fits(self, max_segments: int = 1) -> bool:
        return self.segments <= max_segments

    def __str__(self) -> str:
        return f"{self.units} {self.encoding} units, {self.segments} segment(s)"


def _outside(chars: frozenset[str]) -> re.Pattern[str]:
    """A pattern matching any character not in ``chars`` (a search in C, about twice as fast
    as a set test over the text, and it stops at the first such character)."""
    return re.compile("[^" + "".join(re.escape(char) for char in sorted(chars)) + "]")


_NOT_GSM = _outside(_GSM)


def is_gsm(text: str) -> bool:
    """True when every character of ``text`` can be sent in GSM-7."""
    return _NOT_GSM.search(text) is None


def non_gsm_characters(text: str) -> list[str]:
    """The distinct characters that make ``text`` UCS-2, in order of appearance."""
    seen: dict[str, None] = {}
    for char in text:
        if char not in _GSM:
            seen.setdefault(char)
    return list(seen)


def _utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _gsm_units(text: str) -> int:
    if _EXTENSION.isdisjoint(text):
        return len(text)
    return len(text) + sum(text.count(char) for char in GSM7_EXTENSION)


def size(text: str) -> tuple[Encoding, int]:
    """The encoding and units of ``text``, without counting segments."""
    if is_gsm(text):
        return "GSM-7", _gsm_units(text)
    return "UCS-2", _utf16_units(text)


def fits(text: str, max_segments: int = 1) -> bool:
    """Whether ``text`` is billed as at most ``max_segments`` messages; cheaper than
    :func:`measure` when the answer is plain from the length alone."""
    encoding, units = size(text)
    if units <= SINGLE[encoding]:
        return True
    if max_segments == 1 or units > PART[encoding] * max_segments:
        return False
    return len(_split(text, encoding)) <= max_segments


def measure(text: str) -> SmsLength:
    """How ``text`` is encoded and how many messages it is billed as.

    Empty text is one (empty) message of 0 units, as in Twilio's calculator; Twilio's API
    itself refuses an empty body.
    """
    if is_gsm(text):
        units = _gsm_units(text)
        if units <= SINGLE["GSM-7"]:
            return SmsLength("GSM-7", units, 1)
        return SmsLength("GSM-7", units, len(_split(text, "GSM-7")))
    units = _utf16_units(text)
    if units <= SINGLE["UCS-2"]:
        return SmsLength("UCS-2", units, 1)
    return SmsLength("UCS-2", units, len(_split(text, "UCS-2")))


def parts(text: str) -> tuple[str, ...]:
    """The parts ``text`` is sent as: one when it fits one message, else concatenated parts
    that never split an escape pair, a surrogate pair or a grapheme."""
    length = measure(text)
    if length.segments == 1:
        return (text,)
    return tuple(_split(text, length.encoding))


def _pieces(text: str, encoding: Encoding) -> list[tuple[str, int]]:
    """The unbreakable pieces of ``text`` with their sizes in units."""
    if encoding == "GSM-7":
        return [(char, 2 if char in _EXTENSION else 1) for char in text]
    pieces: list[tuple[str, int]] = []
    cap = PART["UCS-2"]
    for grapheme in _grapheme_pattern().findall(text):
        if grapheme == "\r\n":
            pieces += [("\r", 1), ("\n", 1)]
            continue
        size = _utf16_units(grapheme)
        if size <= cap:
            pieces.append((grapheme, size))
        else:
            # A grapheme longer than a whole part (a letter under dozens of combining marks)
            # cannot stay whole anywhere; split it between code points, never in a pair.
            pieces += [(char, _utf16_units(char)) for char in grapheme]
    return pieces


def _split(text: str, encoding: Encoding) -> list[str]:
    cap = PART[encoding]
    out: list[str] = []
    current: list[str] = []
    used = 0
    for piece, size in _pieces(text, encoding):
        if used + size > cap:
            out.append("".join(current))
            current, used = [], 0
        current.append(piece)
        used += size
    out.append("".join(current))
    return out


def _look_alikes() -> dict[int, str]:
    table: dict[str, str] = {}
    for chars, replacement in (
        ("‘’‚‛′‵´ʹʻʼʽˈˊˋ‹›＇`", "'"),
        ("“”„‟″‶«»ʺˮ〝〞＂", '"'),
        ("‐‑‒–—―−⁃﹘﹣－•", "-"),
        (
            "\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
            "\u202f\u205f\u3000\t",
            " ",
        ),
        ("\u2028\u2029", "\n"),
        ("\u200b\u2060\ufeff\u00ad", ""),
        ("⁄∕÷", "/"),
        ("×", "x"),
        ("․", "."),
    ):
        for char in chars:
            table[char] = replacement
    table.update({"…": "...", "½": "1/2", "¼": "1/4", "¾": "3/4", "‼": "!!"})
    for code in range(0xFF01, 0xFF5F):  # full-width forms of ASCII
        ascii_char = chr(code - 0xFEE0)
        if ascii_char in _GSM:
            table.setdefault(chr(code), ascii_char)
    return {ord(k): v for k, v in table.items()}


_LOOK_ALIKES = _look_alikes()
_ZWNJ = "\u200c"
_LOOK_ALIKE = re.compile("[" + "".join(re.escape(chr(code)) for code in _LOOK_ALIKES) + "]")
_NOT_CONVERTIBLE = _outside(_GSM | {chr(code) for code in _LOOK_ALIKES} | {_ZWNJ})


def _look_alike(match: re.Match[str]) -> str:
    return _LOOK_ALIKES[ord(match.group())]


def may_become_gsm(text: str) -> bool:
    """False when :func:`to_gsm` cannot make ``text`` GSM-7 (it has a letter with no
    look-alike, such as Arabic or ``ő``), however much of it is converted; a set test, far
    cheaper than converting."""
    return _NOT_CONVERTIBLE.search(text) is None


def to_gsm(text: str) -> str:
    """Replace look-alikes with GSM characters without changing what the text says.

    Curly quotes and primes become straight quotes, dashes and bullets a hyphen, an ellipsis
    three dots, non-breaking and other spaces a space, invisible breaks and soft hyphens are
    dropped, full-width forms become their ASCII letters. Letters are never changed: ``ő`` or
    ``ç`` stay, and a text with them stays UCS-2. A zero-width non-joiner is dropped only when
    that makes the whole text GSM-7 (in Arabic or Persian script it shapes the letters).
    """
    # A substitution over the few look-alikes present: ``str.translate`` with this table
    # costs a dictionary lookup per character of the whole text.
    result = _LOOK_ALIKE.sub(_look_alike, text)
    if _ZWNJ in result:
        without = result.replace(_ZWNJ, "")
        if is_gsm(without):
            return without
    return result
