"""How long masking takes on adversarial error bodies (10 KB, 100 KB, 1 MB).

Run: ``python bench/mask.py``. Each body mixes what made the old masker quadratic (long hex
and digit runs) with many emails and phone numbers. Prints seconds per body with the default
truncation and for the whole text (``limit=None``), and the 1MB/100KB ratios.
"""

from __future__ import annotations

import time

from cartrescue.logmask import mask_text

PIECES = (
    "0123456789abcdef" * 64,
    "4" * 2048,
    "+4791234567 kari.nordmann@example.no kari%40example.no 127.0.0.1 " * 16,
    "a@" * 512,
    "+1" * 512,
)


def body(size: int) -> str:
    """Half one unbroken hex run (what made the old email pattern quadratic), half a mix of
    contacts, IPs, digit runs and lone ``@`` and ``+``."""
    text = "".join(PIECES)
    run = ("0123456789abcdef" * (size // 32 + 1))[: size // 2]
    return run + (text * (size // len(text) + 1))[: size - len(run)]


def timed(text: str, *, whole: bool, repeat: int = 3) -> float:
    """The best of ``repeat`` runs, in seconds (the machine may be busy)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        if whole:
            mask_text(text, limit=None)
        else:
            mask_text(text)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    sizes = {"10 KB": 10_000, "100 KB": 100_000, "1 MB": 1_000_000}
    for label, whole in (("default limit", False), ("whole text", True)):
        figures = {}
        for name, size in sizes.items():
            figures[name] = timed(body(size), whole=whole)
            print(f"{label:13} {name:>6}: {figures[name]:.4f} s")
        ratio = figures["1 MB"] / max(figures["100 KB"], 1e-9)
        print(f"{label:13} 1MB/100KB ratio: {ratio:.1f}")


if __name__ == "__main__":
    main()
