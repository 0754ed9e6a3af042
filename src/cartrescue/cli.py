"""The ``cartrescue`` command."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import TextIO
from wsgiref.simple_server import WSGIServer

from . import logsafe
from ._version import __version__
from .channels.console import ConsoleChannel
from .clock import FrozenClock, utc_now
from .config import Config, load_config, parse_duration
from .connectors.base import WebhookCapable
from .demo import DemoConnector, demo_data, demo_experiments, demo_shop
from .doctor import doctor_problems, stale_schedule
from .engine import Recovery, RunReport
from .errors import CartRescueError, ConfigError
from .links import SelfHostedLinks
from .logmask import mask_contact
from .models import CHANNEL_KINDS, ShopInfo, normalize_email, normalize_phone
from .policy import DEFAULT_STEPS
from .preview import SAMPLE_RECOVERY_URL, SAMPLE_SHORT_LINK, PreviewRow, preview
from .render import WHATSAPP_BODY_LIMIT, TemplateRenderer
from .settings import config_schema
from .sms import SINGLE
from .store.sqlite import SQLiteStore
from .web import serve
from .web_settings import web_settings

__all__ = ["EXIT_CONFIG", "EXIT_FAILED", "EXIT_OK", "main"]

EXIT_OK = 0
EXIT_FAILED = 1
"""The pass did not complete, or a check found problems."""
EXIT_USAGE = 2
EXIT_CONFIG = 3
"""The configuration is wrong: nothing ran."""

Handler = Callable[[argparse.Namespace, TextIO], int]


def _setup_logging(verbosity: int, specs: Sequence[str] = ()) -> None:
    """cartrescue's loggers at the level ``-q``/``-v`` chose; other libraries at WARNING
    unless named by ``--log-level NAME=LEVEL`` or ``CARTRESCUE_LOG_LEVELS``. Every line goes
    through the redacting filter (secrets from the config, contacts masked)."""
    level = logging.WARNING if verbosity < 0 else logging.INFO if verbosity == 0 else logging.DEBUG
    env_specs = [os.environ.get("CARTRESCUE_LOG_LEVELS", "")]
    logsafe.configure(level, stream=sys.stderr, levels=logsafe.parse_levels([*env_specs, *specs]))


def _log_level(spec: str) -> str:
    try:
        logsafe.parse_levels([spec])
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return spec


def _config(args: argparse.Namespace, *, require_secrets: bool = True) -> Config:
    """The configuration ``--config`` names. Commands that only read the store or render
    templates pass ``require_secrets=False``: an owner can run ``stats`` by hand without the
    env file cron reads."""
    return load_config(args.config, require_secrets=require_secrets)


def _print_messages(report: RunReport, out: TextIO) -> None:
    for message in report.messages:
        content = message.content
        out.write(
            f"--- {message.channel} to {mask_contact(message.to)} · step {message.step}"
            f" · locale {message.locale} · {message.key}\n"
        )
        if content.subject:
            out.write(f"Subject: {content.subject}\n")
        if content.template:
            out.write(f"[WhatsApp template {content.template} ({content.language})]\n")
        out.write(content.text.rstrip() + "\n")


def cmd_run(args: argparse.Namespace, out: TextIO) -> int:
    config = _config(args)
    store = config.store()
    try:
        recovery = config.recovery(store=store)
        report = recovery.run(dry_run=args.dry_run)
    finally:
        store.close()
    if args.dry_run:
        _print_messages(report, out)
    out.write(report.summary() + "\n")
    return EXIT_OK if report.ok and not report.not_rendered else EXIT_FAILED


def cmd_demo(args: argparse.Namespace, out: TextIO) -> int:
    today = utc_now().date()
    clock = FrozenClock(datetime(today.year, today.month, today.day, 13, 0, tzinfo=UTC))
    shop = demo_shop()
    connector = DemoConnector(clock=clock)
    store = SQLiteStore(args.store or ":memory:")
    # The demo shop "switched cartrescue on" three days ago, so older steps show too.
    store.start_at(clock() - timedelta(days=3))
    channels = [ConsoleChannel(kind, stream=out) for kind in CHANNEL_KINDS]
    links = SelfHostedLinks(
        "https://nordlys-design.example/r/", store, home_url=shop.home_url, clock=clock
    )
    experiments = demo_experiments(clock())
    recovery = Recovery(
        connector, channels, store, clock=clock, shop=shop, links=links, experiments=experiments
    )
    out.write(
        f"cartrescue demo: {shop.name}, a made-up shop bundled with cartrescue "
        f"({len(demo_data()['checkouts'])} checkouts); nothing leaves this machine.\n"
        f"Time of the pass: {clock():%Y-%m-%d %H:%M} UTC\n\n"
    )
    report = recovery.run()
    out.write("\n" + report.summary() + "\n")
    for experiment in experiments.experiments:
        counts = store.arm_counts(experiment.name)
        arms = ", ".join(f"{a.name}: {counts.get(a.name, (0, 0))[0]}" for a in experiment.arms)
        out.write(
            f"Experiment {experiment.name} (step {experiment.step}), checkouts per arm: {arms};"
            " 'cartrescue report' compares the arms once there is data.\n"
        )
    store.close()
    return EXIT_OK if report.ok else EXIT_FAILED


def _fmt_time(value: datetime | None) -> str:
    return "never" if value is None else f"{value:%Y-%m-%d %H:%M} UTC"


def cmd_stats(args: argparse.Namespace, out: TextIO) -> int:
    config = _config(args, require_secrets=False)
    with config.store() as store:
        now = utc_now()
        stats = store.stats(now)
    if args.json:
        out.write(
            json.dumps(
                {
                    "checkouts_seen": stats.checkouts_seen,
                    "checkouts_by_status": stats.checkouts_by_status,
                    "messages": [
                        {"step": s, "channel": c, "status": st, "count": n}
                        for (s, c, st), n in sorted(stats.messages.items())
                    ],
                    "messaged_checkouts": stats.messaged_checkouts,
                    "conversions": stats.conversions,
                    "recovered": stats.recovered,
                    "recovery_rate": stats.recovery_rate,
                    "revenue_recovered": {k: str(v) for k, v in stats.revenue_recovered.items()},
                    "clicks": stats.clicks,
                    "opt_outs": stats.opt_outs,
                    "bad_payloads": stats.bad_payloads,
                    "passes_completed": stats.passes_completed,
                    "not_rendered": stats.not_rendered,
                    "last_pass_completed": stats.last_pass_completed.isoformat()
                    if stats.last_pass_completed
                    else None,
                    "last_pass_error": stats.last_pass_error,
                },
                indent=2,
            )
            + "\n"
        )
        return EXIT_OK
    out.write(f"Checkouts seen:      {stats.checkouts_seen}\n")
    for status, n in sorted(stats.checkouts_by_status.items()):
        out.write(f"  {status:<22} {n}\n")
    out.write("Messages (step, channel, outcome):\n")
    if not stats.messages:
        out.write("  none yet\n")
    for (step, channel, status), n in sorted(stats.messages.items()):
        out.write(f"  step {step} {channel:<9} {status:<8} {n}\n")
    rate = stats.recovery_rate
    out.write(f"Conversions:         {dict(stats.conversions) or 'none'}\n")
    out.write(
        f"Recovered:           {stats.recovered} of {stats.messaged_checkouts} messaged"
        f" ({'-' if rate is None else f'{rate:.1%}'})\n"
    )
    revenue = ", ".join(f"{v} {k}" for k, v in sorted(stats.revenue_recovered.items())) or "0"
    out.write(f"Revenue recovered:   {revenue}\n")
    out.write(f"Link clicks:         {stats.clicks}\n")
    out.write(f"Opt-outs:            {stats.opt_outs}\n")
    out.write(f"Bad payloads:        {stats.bad_payloads}\n")
    if stats.not_rendered:
        out.write(
            f"Not rendered:        {stats.not_rendered} (fix the template: the steps are sent"
            " on the next pass while still due)\n"
        )
    for reason, n in sorted(stats.skip_reasons.items()):
        out.write(f"  {reason}: {n}\n")
    out.write(f"Passes completed:    {stats.passes_completed}\n")
    out.write(f"Last pass completed: {_fmt_time(stats.last_pass_completed)}\n")
    if stats.last_pass_error:
        out.write(f"Last pass FAILED:    {stats.last_pass_error}\n")
    stale = stale_schedule(stats.last_pass_completed, config)
    if stale:
        out.write(f"WARNING: {stale}\n")
        return EXIT_FAILED
    return EXIT_OK


def cmd_report(args: argparse.Namespace, out: TextIO) -> int:
    try:
        from .report import make_report, options_from, render_html, write_csv
    except ImportError as err:
        raise ConfigError(
            f"the report needs the 'report' extra ({err.name} is not installed)",
            fix="pip install 'cartrescue[report]'",
        ) from None
    config = _config(args, require_secrets=False)
    now = utc_now()
    with config.store() as store:
        report = make_report(
            store,
            options_from(config),
            since=now - parse_duration(args.since, key="--since"),
            until=now + timedelta(seconds=1),
            now=now,
        )
    if args.csv:
        write_csv(report, Path(args.csv))
    if args.out or not args.json:
        target = Path(args.out or "report.html")
        target.write_text(render_html(report), encoding="utf-8")
        if not args.json:
            out.write(f"wrote {target}\n")
    if args.json:
        out.write(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    return EXIT_OK


def _contact(raw: str) -> str:
    try:
        value = normalize_email(raw) if "@" in raw else normalize_phone(raw)
    except ValueError as err:
        raise ConfigError(
            f"{raw!r}: {err} (give an email or a phone number in +E.164 form)"
        ) from None
    if value is None:
        raise ConfigError("give an email or a phone number")
    return value.lower()


def cmd_optout(args: argparse.Namespace, out: TextIO) -> int:
    config = _config(args, require_secrets=False)
    with config.store() as store:
        if args.action == "list":
            for entry in store.list_optouts():
                out.write(
                    f"{entry.contact}\t{entry.channel}\t{entry.source}\t{_fmt_time(entry.at)}\n"
                )
            return EXIT_OK
        if not args.contact:
            raise ConfigError(f"optout {args.action} needs an email or phone number")
        contact = _contact(args.contact)
        if args.action == "add":
            store.add_optout(contact, args.channel, "cli", utc_now())
            out.write(f"opted out {contact} ({args.channel})\n")
        else:
            removed = store.remove_optout(contact, args.channel)
            out.write(f"removed {removed} opt-out(s) for {contact}\n")
    return EXIT_OK


def cmd_forget(args: argparse.Namespace, out: TextIO) -> int:
    config = _config(args, require_secrets=False)
    contact = _contact(args.contact)
    with config.store() as store:
        removed = store.forget(contact)
    out.write(f"erased {removed} row(s) naming {contact}; an opt-out is kept as a one-way hash\n")
    return EXIT_OK


def cmd_init(args: argparse.Namespace, out: TextIO) -> int:
    target = Path(args.directory)
    target.mkdir(parents=True, exist_ok=True)
    config_path = target / "cartrescue.toml"
    if config_path.exists() and not args.force:
        raise ConfigError(f"{config_path} exists; use --force to overwrite")
    config_path.write_text(init_config_text(), encoding="utf-8")
    templates = target / "templates"
    defaults = resources.files("cartrescue").joinpath("templates")
    copied = 0
    for channel in defaults.iterdir():
        if not channel.is_dir():
            continue
        for template in channel.iterdir():
            destination = templates / channel.name / template.name
            if destination.exists() and not args.force:
                continue
            destination.parent.mkdir(parents=True, exist_ok=True)
            with resources.as_file(template) as source:
                shutil.copyfile(source, destination)
            copied += 1
    out.write(
        f"wrote {config_path} and {copied} template(s) under {templates}/\n"
        f"Next: fill in the [connector] and [channels.*] tables, then\n"
        f"  cartrescue doctor --config {config_path}\n"
        f"  cartrescue run --config {config_path} --dry-run\n"
    )
    return EXIT_OK


def init_config_text() -> str:
    """The commented ``cartrescue.toml`` that ``init`` writes."""
    return resources.files("cartrescue").joinpath("data/cartrescue.toml").read_text("utf-8")


def cmd_doctor(args: argparse.Namespace, out: TextIO) -> int:
    config = _config(args)
    problems = doctor_problems(config)
    if not problems:
        out.write("All checks passed.\n")
        return EXIT_OK
    for problem in problems:
        out.write(
            f"[{problem.severity}] {problem.area}: {problem.message}\n    fix: {problem.fix}\n"
        )
    return EXIT_FAILED if any(p.severity == "error" for p in problems) else EXIT_OK


def cmd_schema(args: argparse.Namespace, out: TextIO) -> int:
    schema = json.dumps(config_schema(), indent=2, ensure_ascii=False) + "\n"
    if args.output:
        Path(args.output).write_text(schema, encoding="utf-8")
    else:
        out.write(schema)
    return EXIT_OK


def cmd_serve(args: argparse.Namespace, out: TextIO) -> int:
    config = _config(args)
    settings = web_settings(config.data, config.env)
    if settings is None:
        raise ConfigError(
            "add a [web] table with public_url (and the *_env keys of the endpoints you use)",
            key="web",
        )
    host = args.host or settings.host
    port = settings.port if args.port is None else args.port
    with config.store() as store:
        links = config.links(store)
        connector = config.connector() if config.data.get("connector") else None
        # One server for a small shop: the short links of [links], and the shop's checkout
        # webhooks when the connector can verify them.
        app = settings.app(
            store,
            mounts={links.path: links.app()} if links else None,
            connector=connector if isinstance(connector, WebhookCapable) else None,
        )

        def ready(server: WSGIServer) -> None:
            out.write(
                f"serving {settings.public_url} on http://{host}:{server.server_port}/ "
                "(Ctrl-C stops)\n"
            )
            out.flush()

        try:
            serve(app, host, port, ready=ready)
        except KeyboardInterrupt:
            out.write("stopped\n")
        except OSError as err:
            raise ConfigError(f"cannot listen on {host}:{port}: {err}", key="web.port") from err
    return EXIT_OK


def _preview_setup(
    args: argparse.Namespace,
) -> tuple[TemplateRenderer, ShopInfo, list[tuple[int, Decimal | None]], str, str]:
    """The renderer, shop, steps, link and a header line that ``preview`` uses."""
    if args.config is None:
        renderer = TemplateRenderer()
        shop = demo_shop()
        steps = [(s.number, s.discount.percent if s.discount else None) for s in DEFAULT_STEPS]
        link = SAMPLE_SHORT_LINK
        source = "package templates, no configuration"
        why = "the length the default SMS templates are written for"
    else:
        config = load_config(args.config, require_secrets=False)
        renderer = config.renderer()
        shop = config.shop
        steps = [
            (s.number, s.discount.percent if s.discount else None) for s in config.policy.steps
        ]
        with SQLiteStore(":memory:") as scratch:
            links = config.links(scratch)
        if links is None:
            link = SAMPLE_RECOVERY_URL
            why = "no [links]: a raw Shopify recovery URL"
        else:
            link = links.example()
            why = "as long as your [links] short links"
        dirs = ", ".join(str(d) for d in renderer.template_dirs) or "none"
        source = f"{args.config}; your templates: {dirs}, then the package's"
    if args.link:
        link, why = args.link, "given with --link"
    header = (
        f"cartrescue preview: {source}\n"
        f"Shop {shop.name!r}, locale {shop.locale}; at most {renderer.max_segments} SMS "
        f"segment(s); smart encoding {'on' if renderer.smart_encoding else 'off'}\n"
        f"Link: {link} ({len(link)} characters; {why})\n"
    )
    return renderer, shop, steps, link, header


def _preview_line(row: PreviewRow) -> str:
    encoding: str
    if row.channel == "sms" and row.length is not None:
        limit = SINGLE[row.length.encoding]
        length = f"{row.length.units}/{limit}"
        encoding, segments = row.length.encoding, str(row.length.segments or "-")
    elif row.channel == "whatsapp" and row.content is not None:
        body = row.content.text.rsplit("\n[", 1)[0]
        length, encoding, segments = f"{len(body)}/{WHATSAPP_BODY_LIMIT}", "-", "-"
    else:
        length, encoding, segments = "-", "-", "-"
    fits = "yes" if row.fits else "NO"
    return (
        f"{row.channel:<9}{row.step:<5}{row.locale:<7}{row.sample:<11}{encoding:<9}"
        f"{length:>9}  {segments:<4}{fits:<5}{row.template or '-'}"
        + (f"  ({', '.join(row.notes)})" if row.notes else "")
    )


def _preview_text(row: PreviewRow) -> list[str]:
    if row.problem is not None:
        return [f"!! {row.problem}"]
    assert row.content is not None
    if row.channel == "email":
        return [f"Subject: {row.content.subject}"]
    lines = row.content.text.splitlines() or [""]
    if row.channel == "whatsapp":
        lines = [f"[{row.content.template} ({row.content.language})]", *lines]
    return lines


def cmd_preview(args: argparse.Namespace, out: TextIO) -> int:
    renderer, shop, steps, link, header = _preview_setup(args)
    if args.step:
        steps = [(n, p) for n, p in steps if n in args.step]
    missing = [d for d in renderer.template_dirs if not d.is_dir()]
    locales = args.locale or renderer.locales()
    rows = preview(
        renderer,
        shop=shop,
        link=link,
        locales=locales,
        steps=steps,
        channels=args.channel or CHANNEL_KINDS,
    )
    out.write(header)
    for folder in missing:
        out.write(f"WARNING: template folder {folder} does not exist\n")
    out.write(
        "\nSMS must fit one segment: 160 GSM-7 units, or 70 UCS-2 units as soon as one "
        "character is outside GSM-7.\n\n"
    )
    out.write(
        f"{'CHANNEL':<9}{'STEP':<5}{'LOCALE':<7}{'DATA':<11}{'ENCODING':<9}{'LENGTH':>9}  "
        f"{'SEG':<4}{'FITS':<5}TEMPLATE\n"
    )
    for row in rows:
        out.write(_preview_line(row) + "\n")
        for line in _preview_text(row):
            out.write(f"    | {line}".rstrip() + "\n")
    bad = [r for r in rows if not r.fits]
    out.write(
        f"\n{len(rows)} message(s) rendered: {len(rows) - len(bad)} fit, {len(bad)} do not.\n"
    )
    if any(r.channel == "sms" and r.length is not None for r in bad):
        out.write(
            "An SMS that does not fit is not sent. Add a shorter variant to the template, "
            "or set [links] base_url to a short address so the link takes less room.\n"
        )
    return EXIT_FAILED if bad else EXIT_OK


def cmd_serve_links(args: argparse.Namespace, out: TextIO) -> int:
    config = _config(args)
    with config.store() as store:
        links = config.links(store)
        if links is None:
            raise ConfigError("add a [links] table with base_url to serve short links", key="links")

        def ready(server: WSGIServer) -> None:
            out.write(
                f"Serving the short links of {links.base_url} on "
                f"http://{args.host}:{server.server_port}{links.path} (Ctrl-C stops)\n"
            )
            out.flush()

        with contextlib.suppress(KeyboardInterrupt):
            serve(links.app(), args.host, args.port, ready=ready)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cartrescue",
        description="Win back abandoned checkouts by SMS, WhatsApp and email.",
        epilog="Exit codes: 0 ok, 1 the pass failed or a check found problems, "
        "2 wrong usage, 3 configuration error.",
    )
    parser.add_argument("--version", action="version", version=f"cartrescue {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    parser.add_argument(
        "--log-level",
        action="append",
        default=[],
        type=_log_level,
        metavar="NAME=LEVEL",
        help="log another library at LEVEL, e.g. urllib3=DEBUG (repeatable; other libraries "
        "log warnings only); also CARTRESCUE_LOG_LEVELS=urllib3=DEBUG,shopify=INFO",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.set_defaults(handler=handler)
        return command

    def with_config(command: argparse.ArgumentParser) -> None:
        command.add_argument(
            "--config",
            "-c",
            default="cartrescue.toml",
            metavar="FILE",
            help="the configuration file (default: ./cartrescue.toml)",
        )

    run = add("run", cmd_run, "one recovery pass: fetch, decide, send, record")
    with_config(run)
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="render and print what would be sent; send and record nothing",
    )
    demo = add(
        "demo", cmd_demo, "a full pass against a made-up shop, printed; no network, no config"
    )
    demo.add_argument("--store", help="keep the demo's store in this file (default: in memory)")
    stats = add("stats", cmd_stats, "checkouts, messages, conversions and the last completed pass")
    with_config(stats)
    stats.add_argument("--json", action="store_true", help="print JSON")
    report = add(
        "report",
        cmd_report,
        "KPIs, attributed and incremental revenue, experiments: an HTML page, CSV or JSON",
    )
    with_config(report)
    report.add_argument(
        "--since", default="30d", help="checkouts abandoned this long ago (default: 30d)"
    )
    report.add_argument("--out", "-o", metavar="FILE", help="the HTML page (default report.html)")
    report.add_argument("--csv", metavar="DIR", help="also write the tables as CSV files here")
    report.add_argument("--json", action="store_true", help="print the figures as JSON")
    optout = add("optout", cmd_optout, "add, remove or list opt-outs")
    optout.add_argument("action", choices=("add", "remove", "list"))
    optout.add_argument("contact", nargs="?", help="email or +E.164 phone number")
    optout.add_argument("--channel", default="*", choices=("*", *CHANNEL_KINDS))
    with_config(optout)
    forget = add("forget", cmd_forget, "erase everything the store knows about a person (GDPR)")
    forget.add_argument("contact", help="email or +E.164 phone number")
    with_config(forget)
    init = add("init", cmd_init, "write a commented cartrescue.toml and templates to customise")
    init.add_argument("directory", nargs="?", default=".")
    init.add_argument("--force", action="store_true", help="overwrite existing files")
    doctor = add(
        "doctor", cmd_doctor, "read-only checks of config, credentials, templates, schedule"
    )
    with_config(doctor)
    schema = add(
        "schema",
        cmd_schema,
        "print the JSON Schema of cartrescue.toml (installed plugins included) for editors",
    )
    schema.add_argument("--output", "-o", metavar="FILE", help="write it to FILE instead")
    serve_command = add(
        "serve",
        cmd_serve,
        "serve the [web] endpoints: Twilio and WhatsApp webhooks, one-click unsubscribe",
    )
    with_config(serve_command)
    serve_command.add_argument("--host", help="address to listen on (default: [web] host)")
    serve_command.add_argument(
        "--port", type=int, help="port to listen on (default: [web] port, 8080)"
    )
    preview_cmd = add(
        "preview",
        cmd_preview,
        "render every template with sample and worst-case data; show SMS length and fit",
    )
    preview_cmd.add_argument(
        "--config",
        "-c",
        metavar="FILE",
        help="use this configuration's templates, shop, steps and [links] "
        "(default: the package's templates alone)",
    )
    preview_cmd.add_argument(
        "--locale", action="append", metavar="L", help="only this locale (repeatable)"
    )
    preview_cmd.add_argument(
        "--channel", action="append", choices=CHANNEL_KINDS, help="only this channel (repeatable)"
    )
    preview_cmd.add_argument(
        "--step", action="append", type=int, metavar="N", help="only this step (repeatable)"
    )
    preview_cmd.add_argument("--link", metavar="URL", help="preview with this link in messages")
    serve_links = add(
        "serve-links",
        cmd_serve_links,
        "answer the short links of [links] (redirect, count clicks) with a small web server",
    )
    with_config(serve_links)
    serve_links.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    serve_links.add_argument("--port", type=int, default=8080, help="port (default: %(default)s)")
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    quiet = args.quiet or (args.command != "run" and not args.verbose)
    _setup_logging(-1 if quiet else args.verbose, args.log_level)
    stream = out or sys.stdout
    try:
        code: int = args.handler(args, stream)
    except ConfigError as err:
        sys.stderr.write(f"cartrescue: configuration error: {err}\n")
        return EXIT_CONFIG
    except CartRescueError as err:
        sys.stderr.write(f"cartrescue: {err}\n")
        return EXIT_FAILED
    return code


if __name__ == "__main__":
    raise SystemExit(main())
