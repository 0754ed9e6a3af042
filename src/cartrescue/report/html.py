"""The report as one self-contained HTML page: no script, no external file, charts drawn by
matplotlib as inline SVG (it opens offline, in any browser, and prints), numbers and money
formatted by Babel for the shop's locale.

Every figure shown carries ``data-figure`` (its path in the JSON report) and ``data-value``
(the raw number), so a test can check the page against ``report --json``.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from html import escape
from typing import Any

import matplotlib
from babel.numbers import format_currency, format_decimal, format_percent
from matplotlib.figure import Figure

__all__ = ["render_html"]

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:64rem;
color:#1d2430;padding:0 1rem}
h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #d8dde6}
.kpis{display:grid;grid-template-columns:repeat(auto-fill,minmax(12rem,1fr));gap:.75rem}
.kpi{background:#f4f6fa;border-radius:.5rem;padding:.75rem}
.kpi b{display:block;font-size:1.3rem}.kpi span{color:#5b6575;font-size:.85rem}
table{border-collapse:collapse;width:100%;font-size:.9rem;margin:.5rem 0}
th,td{padding:.3rem .5rem;border-bottom:1px solid #e6e9ef;text-align:right}
th:first-child,td:first-child{text-align:left}
.verdict{font-weight:600}.note{color:#5b6575;font-size:.85rem}
figure{margin:1rem 0}figure svg{max-width:100%;height:auto}
"""


class _Fmt:
    def __init__(self, locale: str, currency: str | None) -> None:
        self.locale = locale.replace("-", "_") or "en"
        self.currency = currency

    def money(self, value: float | None) -> str:
        if value is None:
            return "–"
        if self.currency:
            return str(format_currency(value, self.currency, locale=self.locale))
        return str(format_decimal(round(value, 2), locale=self.locale))

    def number(self, value: float | None) -> str:
        if value is None:
            return "–"
        return str(format_decimal(value, format="#,##0.##", locale=self.locale))

    def percent(self, value: float | None) -> str:
        if value is None:
            return "–"
        return str(format_percent(value, format="#,##0.0%", locale=self.locale))

    def points(self, value: float | None) -> str:
        if value is None:
            return "–"
        return str(format_decimal(value * 100, format="+#,##0.0;-#,##0.0", locale=self.locale))


def _figure(path: str, value: Any, text: str) -> str:
    raw = "" if value is None else escape(repr(value) if isinstance(value, float) else str(value))
    return f'<span data-figure="{escape(path)}" data-value="{raw}">{escape(text)}</span>'


_NO_METADATA = dict.fromkeys(("Creator", "Date", "Format", "Type"))


def _svg(fig: Figure) -> str:
    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "cartrescue"}):
        fig.savefig(buffer, format="svg", bbox_inches="tight", metadata=_NO_METADATA)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _chart(name: str, title: str, fig: Figure) -> str:
    return (
        f'<figure class="chart" data-chart="{name}"><figcaption>{escape(title)}</figcaption>'
        f"{_svg(fig)}</figure>"
    )


def _funnel(report: dict[str, Any]) -> Figure:
    rows = report["breakdown"]["step"]
    fig = Figure(figsize=(7, 3))
    ax = fig.subplots()
    labels = [f"step {r['step']}" for r in rows] or ["(none)"]
    width = 0.27
    for offset, (key, colour) in enumerate(
        (("sent", "#4c78a8"), ("clicked", "#f58518"), ("attributed", "#54a24b"))
    ):
        values = [r[key] for r in rows] or [0]
        ax.bar(
            [i + (offset - 1) * width for i in range(len(labels))],
            values,
            width,
            label=key,
            color=colour,
        )
    ax.set_xticks(range(len(labels)), labels)
    ax.legend(frameon=False)
    ax.set_ylabel("messages")
    return fig


def _over_time(report: dict[str, Any]) -> Figure:
    days = report["days"]
    fig = Figure(figsize=(7, 3))
    ax = fig.subplots()
    x = list(range(len(days)))
    ax.plot(x, [d["attributed_revenue"] for d in days], "o-", label="attributed", color="#4c78a8")
    inc = [(i, d["incremental_revenue"]) for i, d in enumerate(days)]
    inc = [(i, v) for i, v in inc if v is not None]
    ax.plot([i for i, _ in inc], [v for _, v in inc], "s-", label="incremental", color="#54a24b")
    if days:
        step = max(1, len(days) // 6)
        ax.set_xticks(x[::step], [d["day"] for d in days][::step])
    ax.set_ylabel(f"cumulative revenue ({report['currency'] or ''})")
    ax.legend(frameon=False)
    return fig


def _arms(report: dict[str, Any]) -> list[dict[str, Any]]:
    arms = list(report["holdout"]["arms"]) if report["holdout"] else []
    for experiment in report["experiments"]:
        arms += experiment["arms"]
    return [a for a in arms if a["conversion_rate"] is not None]


def _conversion(report: dict[str, Any]) -> Figure:
    arms = _arms(report)
    fig = Figure(figsize=(7, max(2.0, 0.45 * len(arms) + 1)))
    ax = fig.subplots()
    y = list(range(len(arms)))
    rates = [a["conversion_rate"]["estimate"] * 100 for a in arms]
    low = [r - a["conversion_rate"]["low"] * 100 for r, a in zip(rates, arms, strict=True)]
    high = [a["conversion_rate"]["high"] * 100 - r for r, a in zip(rates, arms, strict=True)]
    ax.errorbar(rates, y, xerr=[low, high], fmt="o", color="#4c78a8", capsize=4)
    ax.set_yticks(y, [f"{a['experiment']}: {a['arm']}" for a in arms])
    ax.set_xlabel("conversion rate, % (95 % interval)")
    ax.invert_yaxis()
    return fig


def _comparisons(report: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    if report["holdout"]:
        out.append(("holdout", report["holdout"]["comparison"]))
    for experiment in report["experiments"]:
        out += [(experiment["name"], c) for c in experiment["comparisons"]]
    return [(name, c) for name, c in out if c["lift"] is not None]


def _lift(report: dict[str, Any]) -> Figure:
    rows = _comparisons(report)
    fig = Figure(figsize=(7, max(2.0, 0.45 * len(rows) + 1)))
    ax = fig.subplots()
    y = list(range(len(rows)))
    est = [c["lift"]["estimate"] * 100 for _, c in rows]
    low = [e - c["lift"]["low"] * 100 for e, (_, c) in zip(est, rows, strict=True)]
    high = [c["lift"]["high"] * 100 - e for e, (_, c) in zip(est, rows, strict=True)]
    ax.axvline(0, color="#888888", linewidth=1)
    ax.errorbar(est, y, xerr=[low, high], fmt="s", color="#54a24b", capsize=4)
    ax.set_yticks(y, [f"{name}: {c['arm']} vs {c['control']}" for name, c in rows])
    ax.set_xlabel("lift, percentage points (95 % interval)")
    ax.invert_yaxis()
    return fig


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    out = ["<table><thead><tr>", *(f"<th>{escape(h)}</th>" for h in head), "</tr></thead><tbody>"]
    for row in rows:
        out += ["<tr>", *(f"<td>{cell}</td>" for cell in row), "</tr>"]
    out.append("</tbody></table>")
    return "".join(out)


def _arm_rows(arms: Sequence[dict[str, Any]], path: str, f: _Fmt) -> list[list[str]]:
    rows = []
    for i, a in enumerate(arms):
        p = f"{path}[{i}]"
        rate = a["conversion_rate"]
        rows.append(
            [
                escape(a["arm"]),
                _figure(f"{p}.eligible", a["eligible"], f.number(a["eligible"])),
                _figure(f"{p}.messaged", a["messaged"], f.number(a["messaged"])),
                _figure(f"{p}.clicked", a["clicked"], f.number(a["clicked"])),
                _figure(f"{p}.converted", a["converted"], f.number(a["converted"])),
                _figure(
                    f"{p}.conversion_rate.estimate",
                    None if rate is None else rate["estimate"],
                    "–"
                    if rate is None
                    else f"{f.percent(rate['estimate'])} "
                    f"({f.percent(rate['low'])}–{f.percent(rate['high'])})",
                ),
                _figure(f"{p}.revenue", a["revenue"], f.money(a["revenue"])),
                _figure(
                    f"{p}.revenue_per_recipient",
                    a["revenue_per_recipient"],
                    f.money(a["revenue_per_recipient"]),
                ),
                _figure(f"{p}.opt_out_rate", a["opt_out_rate"], f.percent(a["opt_out_rate"])),
            ]
        )
    return rows


_ARM_HEAD = (
    "arm",
    "eligible",
    "messaged",
    "clicked",
    "converted",
    "conversion (95 %)",
    "revenue",
    "per person",
    "opt-out",
)


def _comparison(c: dict[str, Any], path: str, f: _Fmt) -> str:
    lift = c["lift"]
    text = (
        "–"
        if lift is None
        else f"{f.points(lift['estimate'])} points "
        f"({f.points(lift['low'])} to {f.points(lift['high'])})"
    )
    parts = [
        f"<p><b>{escape(c['arm'])}</b> against <b>{escape(c['control'])}</b>: lift ",
        _figure(f"{path}.lift.estimate", None if lift is None else lift["estimate"], text),
        "; probability to beat the control ",
        _figure(
            f"{path}.probability_to_beat",
            c["probability_to_beat"],
            f.percent(c["probability_to_beat"]),
        ),
        '. <span class="verdict">',
        _figure(f"{path}.verdict", c["verdict"], c["verdict"]),
        "</span>",
    ]
    if c["verdict"] == "not enough data yet":
        parts.append(
            f" (about {f.number(c['sample_needed'])} people per group are needed, "
            f"{f.number(c['sample_have'])} so far)"
        )
    if c["guardrail_breached"]:
        parts.append(" <b>Opt-outs are significantly higher than in the control.</b>")
    parts.append("</p>")
    return "".join(parts)


def _engagement(report: dict[str, Any], f: _Fmt) -> list[str]:
    rows = report["engagement"]
    if not rows:
        return [
            "<h2>Delivery and reads</h2>",
            '<p class="note">No status callbacks yet: point the providers\' status callbacks '
            "at <code>cartrescue serve</code> to see delivery and read rates.</p>",
        ]
    table = []
    for i, r in enumerate(rows):
        p = f"engagement[{i}]"
        table.append(
            [
                escape(str(r["channel"])),
                _figure(f"{p}.sent", r["sent"], f.number(r["sent"])),
                _figure(f"{p}.delivered", r["delivered"], f.number(r["delivered"])),
                _figure(f"{p}.delivery_rate", r["delivery_rate"], f.percent(r["delivery_rate"])),
                _figure(f"{p}.read", r["read"], f.number(r["read"])),
                _figure(f"{p}.read_rate", r["read_rate"], f.percent(r["read_rate"])),
                _figure(f"{p}.failed", r["failed"], f.number(r["failed"])),
            ]
        )
    head = ["channel", "sent", "delivered", "delivery rate", "read", "read rate", "failed"]
    return [
        "<h2>Delivery and reads</h2>",
        '<p class="note">As the providers\' status callbacks report them; "sent" counts the '
        "messages a provider accepted; – where a channel reports no reads.</p>",
        _table(head, table),
    ]


def render_html(report: dict[str, Any]) -> str:
    """The page for a report built by :func:`~cartrescue.report.build.build_report`."""
    f = _Fmt(report["locale"], report["currency"])
    k = report["kpis"]
    kpis = [
        ("abandoned_checkouts", "abandoned checkouts", f.number),
        ("abandoned_value", "value abandoned", f.money),
        ("abandoned_items", "items abandoned", f.number),
        ("recovery_rate", "recovery rate (any purchase)", f.percent),
        ("revenue_recovered_attributed", "revenue recovered, attributed", f.money),
        ("revenue_recovered_incremental", "revenue recovered, incremental", f.money),
        ("hours_to_recovery", "hours to recovery (mean)", f.number),
        ("messages_sent", "messages sent", f.number),
        ("click_rate", "click rate", f.percent),
        ("opt_out_rate", "opt-out rate", f.percent),
        ("cost", "message cost", f.money),
        ("roi", "return on cost (attributed)", f.percent),
    ]
    body = [
        f"<h1>Is it working? {escape(report['shop'])}</h1>",
        f'<p class="note">Checkouts abandoned from {escape(report["since"][:10])} to '
        f"{escape(report['until'][:10])}; generated {escape(report['generated_at'][:16])}.</p>",
        '<div class="kpis">',
        *(
            f'<div class="kpi"><b>{_figure("kpis." + key, k[key], fmt(k[key]))}</b>'
            f"<span>{escape(label)}</span></div>"
            for key, label, fmt in kpis
        ),
        "</div>",
        "<h2>Attributed and incremental</h2>",
        '<p class="note">Attributed: purchases within the click or send window of a message '
        "(they include people who would have bought anyway). Incremental: what the messaged "
        "people bought beyond the held-out people, scaled to everyone messaged, with its "
        "95 % interval. The two are never added together.</p>",
    ]
    a = report["attribution"]
    inc = a["incremental"]
    body.append(
        "<p>Attributed: "
        + _figure(
            "attribution.attributed.conversions",
            a["attributed"]["conversions"],
            f.number(a["attributed"]["conversions"]),
        )
        + " purchases, "
        + _figure(
            "attribution.attributed.revenue",
            a["attributed"]["revenue"],
            f.money(a["attributed"]["revenue"]),
        )
        + ".</p>"
    )
    if inc and inc["conversions"] is not None:
        rev = inc["revenue"]
        body.append(
            "<p>Incremental: "
            + _figure(
                "attribution.incremental.conversions.estimate",
                inc["conversions"]["estimate"],
                f"{f.number(inc['conversions']['estimate'])} purchases "
                f"({f.number(inc['conversions']['low'])} to "
                f"{f.number(inc['conversions']['high'])})",
            )
            + ", "
            + (
                "–"
                if rev is None
                else _figure(
                    "attribution.incremental.revenue.estimate",
                    rev["estimate"],
                    f"{f.money(rev['estimate'])} ({f.money(rev['low'])} to {f.money(rev['high'])})",
                )
            )
            + ".</p>"
        )
    else:
        body.append(
            '<p class="note">No holdout: set <code>[experiment] holdout = 0.1</code> to '
            "measure what the reminders add.</p>"
        )
    body.append(_chart("revenue", "Revenue recovered over time (cumulative)", _over_time(report)))
    if report["holdout"]:
        h = report["holdout"]
        body += [
            "<h2>Holdout</h2>",
            _table(_ARM_HEAD, _arm_rows(h["arms"], "holdout.arms", f)),
            _comparison(h["comparison"], "holdout.comparison", f),
        ]
    for i, e in enumerate(report["experiments"]):
        body += [
            f"<h2>Experiment {escape(e['name'])}</h2>",
            _table(_ARM_HEAD, _arm_rows(e["arms"], f"experiments[{i}].arms", f)),
            *(
                _comparison(c, f"experiments[{i}].comparisons[{j}]", f)
                for j, c in enumerate(e["comparisons"])
            ),
        ]
    if _arms(report):
        body.append(_chart("conversion", "Conversion per arm", _conversion(report)))
    if _comparisons(report):
        body.append(_chart("lift", "Lift against the holdout or control", _lift(report)))
    body += ["<h2>Funnel by step</h2>", _chart("funnel", "Messages by step", _funnel(report))]
    for key in ("step", "channel", "locale", "arm"):
        rows = report["breakdown"][key]
        head = [key, "sent", "clicked", "click rate", "attributed", "revenue", "opt-out"]
        if key == "channel":
            head += ["cost", "ROI"]
        table = []
        for i, r in enumerate(rows):
            p = f"breakdown.{key}[{i}]"
            cells = [
                escape(str(r[key]) or "(unknown)"),
                _figure(f"{p}.sent", r["sent"], f.number(r["sent"])),
                _figure(f"{p}.clicked", r["clicked"], f.number(r["clicked"])),
                _figure(f"{p}.click_rate", r["click_rate"], f.percent(r["click_rate"])),
                _figure(f"{p}.attributed", r["attributed"], f.number(r["attributed"])),
                _figure(f"{p}.revenue", r["revenue"], f.money(r["revenue"])),
                _figure(f"{p}.opt_out_rate", r["opt_out_rate"], f.percent(r["opt_out_rate"])),
            ]
            if key == "channel":
                cells += [
                    _figure(f"{p}.cost", r["cost"], f.money(r["cost"])),
                    _figure(f"{p}.roi", r["roi"], f.percent(r["roi"])),
                ]
            table.append(cells)
        body += [f"<h2>By {key}</h2>", _table(head, table)]
    body += _engagement(report, f)
    return (
        '<!DOCTYPE html>\n<html lang="'
        + escape(report["locale"])
        + '"><head><meta charset="utf-8"><title>cartrescue report: '
        + escape(report["shop"])
        + "</title><style>"
        + _STYLE
        + "</style></head><body>"
        + "\n".join(body)
        + "</body></html>\n"
    )
