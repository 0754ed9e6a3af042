"""The fuzz suite's settings and its tally of inputs run, printed at the end of the session.

``CARTRESCUE_FUZZ_EXAMPLES`` sets the examples per property (default 400, a whole pass gets a
fifth of that: about 5 500 inputs, under half a minute on two cores); raise it for a long
run::

    CARTRESCUE_FUZZ_EXAMPLES=20000 python -m pytest -q tests/fuzz
"""

from __future__ import annotations

import pytest

from .properties import TALLY


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TALLY:
        total = sum(TALLY.values())
        parts = ", ".join(f"{name} {count}" for name, count in sorted(TALLY.items()))
        terminalreporter.write_line(f"fuzz: {total} inputs run ({parts})")
