"""How fast messages are rendered and fitted, against a bare Jinja2 render of the same
template.

    python bench/render.py [--seconds 1.0] [--repeats 5]

For each case it prints messages rendered and fitted per second by ``TemplateRenderer``
(lookup, context with Babel formatting, sandbox, variants, smart encoding, measurement) and
renders per second of the same template source by a plain ``jinja2.Environment`` given the
same variables, and the ratio between the two; then the worst ratio against the goal (3x).
The two are measured in turns, ``--repeats`` times, and the medians are printed, so that a
busy machine slows both alike.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial

import jinja2

from cartrescue.models import ShopInfo
from cartrescue.preview import SAMPLE_SHORT_LINK, sample_checkout
from cartrescue.render import MessageContext, TemplateRenderer, _variables

SHOP = ShopInfo(name="Nordlys Design", locale="en", timezone="Europe/Oslo")
NOW = datetime(2026, 11, 24, 13, 0, tzinfo=UTC)
GOAL = 3.0
"""Render and fit may cost at most this many bare Jinja2 renders of the same template."""
CASES = [
    ("sms", 1, "nb", False, "typical Norwegian cart, first variant fits"),
    ("sms", 1, "nb", True, "worst case, second of four variants fits"),
    ("sms", 1, "ar", True, "worst case in UCS-2, fourth variant fits"),
    ("whatsapp", 1, "pt-BR", True, "worst case, parameters and body"),
    ("email", 2, "fi", True, "worst case, subject, text and HTML"),
]


def rate(work: Callable[[], object], seconds: float) -> float:
    """Calls of ``work`` per second, measured over about ``seconds``."""
    work()  # warm the caches
    done, start = 0, time.perf_counter()
    batch = 50
    while True:
        for _ in range(batch):
            work()
        done += batch
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return done / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per figure")
    parser.add_argument("--repeats", type=int, default=5, help="turns per figure (median)")
    args = parser.parse_args()
    renderer = TemplateRenderer()
    bare = jinja2.Environment(
        loader=jinja2.PackageLoader("cartrescue", "templates"),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    print(
        f"cartrescue render benchmark: Python {platform.python_version()}, "
        f"Jinja2 {jinja2.__version__}, {args.seconds:.1f} s per figure, "
        f"median of {args.repeats} turns"
    )
    highest = 0.0
    print(f"{'template':<21}{'case':<44}{'fitted/s':>10}{'bare/s':>10}{'ratio':>8}")
    for channel, step, locale, worst, label in CASES:
        context = MessageContext(
            checkout=sample_checkout(locale, worst=worst, now=NOW),
            shop=SHOP,
            locale=locale,
            link=SAMPLE_SHORT_LINK,
            unsubscribe_url="https://nordlys-design.example/u/abc",
        )
        name = renderer.resolve(channel, step, locale, SHOP.locale)  # type: ignore[arg-type]
        variables = _variables(context, locale, whatsapp=channel == "whatsapp")
        template = bare.get_template(name)
        work = partial(renderer.render, channel, step, context)  # type: ignore[arg-type]
        ours_runs, plain_runs, ratios = [], [], []
        for _ in range(args.repeats):
            ours_runs.append(rate(work, args.seconds / args.repeats))
            bare_work = partial(template.render, variables)
            plain_runs.append(rate(bare_work, args.seconds / args.repeats))
            ratios.append(plain_runs[-1] / ours_runs[-1])
        ours, plain = statistics.median(ours_runs), statistics.median(plain_runs)
        ratio = statistics.median(ratios)
        highest = max(highest, ratio)
        print(f"{name:<21}{label:<44}{ours:>10,.0f}{plain:>10,.0f}{ratio:>7.1f}x")
    verdict = "meets" if highest <= GOAL else "misses"
    print(f"worst ratio {highest:.1f}x ({verdict} the goal of {GOAL:.0f}x)")


if __name__ == "__main__":
    main()
