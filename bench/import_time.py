"""How long a fresh Python takes to ``import cartrescue`` and to print ``cartrescue --help``,
against a bare ``python -c pass``.

    python bench/import_time.py [--runs 7]

Each figure is the median wall time of ``--runs`` fresh processes (so nothing is cached in
memory but what the operating system caches), measured in turns so that a busy machine slows
all three alike. The goal for ``import cartrescue`` is 150 ms.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

GOAL_MS = 150.0


def _script() -> list[str]:
    """The installed ``cartrescue`` command beside this Python, else the same entry point."""
    found = shutil.which("cartrescue", path=str(Path(sys.executable).parent)) or shutil.which(
        "cartrescue"
    )
    if found:
        return [found]
    return [sys.executable, "-c", "import sys; from cartrescue.cli import main; sys.exit(main())"]


def _wall(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=_ENV)
    return (time.perf_counter() - start) * 1000


_ENV = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="fresh processes per figure")
    args = parser.parse_args()
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "import cartrescue": [sys.executable, "-c", "import cartrescue"],
        "cartrescue --help": [*_script(), "--help"],
    }
    for command in commands.values():
        _wall(command)  # compile and cache the bytecode first
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.runs):
        for name, command in commands.items():
            times[name].append(_wall(command))
    print(
        f"cartrescue import benchmark: Python {platform.python_version()}, "
        f"median of {args.runs} fresh processes"
    )
    bare = statistics.median(times["python -c pass"])
    for name, runs in times.items():
        median = statistics.median(runs)
        extra = "" if name == "python -c pass" else f"  (+{median - bare:,.0f} ms over bare)"
        print(f"{name:<20}{median:>8,.0f} ms{extra}")
    imported = statistics.median(times["import cartrescue"])
    verdict = "meets" if imported <= GOAL_MS else "misses"
    print(f"import cartrescue {verdict} the goal of {GOAL_MS:.0f} ms")


if __name__ == "__main__":
    main()
