"""What each ``cartrescue`` command does; :mod:`cartrescue.cli` parses the command line and
imports this module only once a command runs, so ``cartrescue --help`` stays fast."""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import TextIO
from wsgiref.types import WSGIApplication

from .channels.console import ConsoleChannel
from .cli import DEFAULT_CONFIG, EXIT_CONFIG, EXIT_FAILED, EXIT_OK
from .clock import FrozenClock, utc_now
from .config import Config, load_config, parse_duration
from .connectors.base import WebhookCapable
from .demo import (
    DemoConnector,
    demo_conversation,
    demo_data,
    demo_experiments,
    demo_shop,
    demo_signals,
)
from .doctor import doctor, stale_schedule
from .engine import Recovery, RunReport
from .errors import ConfigError
from .links import SelfHostedLinks, shops_redirect_app
from .logmask import mask_contact, mask_text
from .models import CHANNEL_KINDS, normalize_email, normalize_phone
from .preview import (
    PreviewRow,
    offer_samples,
    offer_step,
    preview,
    preview_body,
    preview_line,
    preview_setup,
    write_html,
)
from .progress import terminal_progress
from .settings import config_schema
from .shops import combine_facts, combine_stats, select_shops
from .stats import add_signals, stats_document, stats_table
from .store.base import ConversationStore, SignalCounts, SignalStore, Stats, Store
from .store.sqlite import SQLiteStore
from .testsend import send_test
from .web import make_shops_app, serve
from .web_server import Server, ServerName, waitress_installed
from .web_settings import web_settings


def _config(args: argparse.Namespace, *, require_secrets: bool = True) -> Config:
    """The configuration ``--config`` names. Commands that only read the store or render
    templates pass ``require_secrets=False``: an owner can run ``stats`` by hand without the
    env file cron reads."""
    return load_config(args.config, require_secrets=require_secrets)


def _one_shop(config: Config, shop: str | None) -> Config:
    """The one shop a command acts on: ``--shop NAME`` of a ``[[shops]]`` file (ConfigError
    names the choices when it is missing or unknown), or a single-shop file itself."""
    (chosen,) = select_shops(config, shop, all_allowed=False)
    return chosen


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
    code = EXIT_OK
    for config in select_shops(_config(args), args.shop, every=args.all):
        store = config.store()
        progress = terminal_progress(sys.stderr)
        try:
            recovery = config.recovery(store=store)
            report = recovery.run(dry_run=args.dry_run, progress=progress)
        finally:
            store.close()
            if progress is not None:
                progress.close()
        if args.dry_run:
            _print_messages(report, out)
        prefix = f"{config.shop_key}: " if config.shop_key else ""
        out.write(prefix + report.summary() + "\n")
        if not report.ok or report.not_rendered:
            code = EXIT_FAILED
    return code


def cmd_demo(args: argparse.Namespace, out: TextIO) -> int:
    today = utc_now().date()
    clock = FrozenClock(datetime(today.year, today.month, today.day, 13, 0, tzinfo=UTC))
    shop = demo_shop()
    connector = DemoConnector(clock=clock)
    store = SQLiteStore(args.store or ":memory:")
    # The demo shop "switched cartrescue on" three days ago, so older steps show too.
    store.start_at(clock() - timedelta(days=3))
    channels = [ConsoleChannel(kind, stream=out) for kind in CHANNEL_KINDS]
    config = None if args.config is None else load_config(args.config, require_secrets=False)
    links = (None if config is None else config.links(store)) or SelfHostedLinks(
        "https://nordlys-design.example/r/", store, home_url=shop.home_url, clock=clock
    )
    experiments = None if config is not None else demo_experiments(clock())
    recovery = Recovery(
        connector,
        channels,
        store,
        clock=clock,
        shop=shop if config is None else config.shop,
        links=links,
        policy=None if config is None else config.policy,
        renderer=None if config is None else config.renderer(),
        experiments=experiments,
    )
    out.write(
        f"cartrescue demo: {shop.name}, a made-up shop bundled with cartrescue "
        f"({len(demo_data()['checkouts'])} checkouts); nothing leaves this machine.\n"
        + (
            ""
            if config is None
            else f"With {args.config}: its [shop], [policy], [templates] and [links].\n"
        )
        + f"Time of the pass: {clock():%Y-%m-%d %H:%M} UTC\n\n"
    )
    report = recovery.run()
    out.write("\n" + report.summary() + "\n")
    for experiment in experiments.experiments if experiments is not None else ():
        counts = store.arm_counts(experiment.name)
        arms = ", ".join(f"{a.name}: {counts.get(a.name, (0, 0))[0]}" for a in experiment.arms)
        out.write(
            f"Experiment {experiment.name} (step {experiment.step}), checkouts per arm: {arms};"
            " 'cartrescue report' compares the arms once there is data.\n"
        )
    demo_signals(store, channels, clock, out)
    demo_conversation(store, clock, out)
    store.close()
    return EXIT_OK if report.ok else EXIT_FAILED


def _fmt_time(value: datetime | None) -> str:
    return "never" if value is None else f"{value:%Y-%m-%d %H:%M} UTC"


def cmd_stats(args: argparse.Namespace, out: TextIO) -> int:
    config = _config(args, require_secrets=False)
    chosen = select_shops(config, args.shop, every=args.shop is None)
    now = utc_now()
    per_shop: dict[str, tuple[Stats, dict[str, int], dict[str, SignalCounts]]] = {}
    for shop_config in chosen:
        with shop_config.store() as store:
            reasons = store.reason_counts() if isinstance(store, ConversationStore) else {}
            signals = store.signal_counts() if isinstance(store, SignalStore) else {}
            per_shop[shop_config.shop_key] = (store.stats(now), reasons, dict(signals))
    figures = list(per_shop.values())
    overall = (
        figures[0][0] if len(figures) == 1 else combine_stats([f for f, _, _ in figures]),
        dict(sum((Counter(r) for _, r, _ in figures), Counter[str]())),
        add_signals([g for _, _, g in figures]),
    )
    # --all: each shop's figures, then all of them added up ("" is the overall).
    sections = {**per_shop, "": overall} if args.all and len(chosen) > 1 else {"": overall}
    stale = False
    documents: dict[str, object] = {}
    for name, (stats, reasons, signals) in sections.items():
        late = stale_schedule(stats.last_pass_completed, config, now=now)
        stale = stale or late is not None
        if args.json:
            documents[name] = stats_document(
                stats, now=now, stale=late, reasons=reasons, signals=signals
            )
            continue
        if name:
            out.write(f"Shop {name}\n")
        elif len(chosen) > 1:
            out.write(f"All {len(chosen)} shops: " + ", ".join(c.shop_key for c in chosen) + "\n")
        out.write(
            stats_table(
                stats,
                now=now,
                locale=config.shop.locale,
                stale=late,
                reasons=reasons,
                signals=signals,
            )
        )
        out.write("\n" if name else "")
    if args.json:
        overall_document = documents.pop("")
        document = (
            {"shops": documents, "overall": overall_document} if documents else overall_document
        )
        out.write(json.dumps(document, indent=2) + "\n")
    return EXIT_FAILED if stale else EXIT_OK


def cmd_report(args: argparse.Namespace, out: TextIO) -> int:
    try:
        from .report import (
            build_report,
            options_from,
            read_facts,
            read_signals,
            render_html,
            write_csv,
        )
    except ImportError as err:
        raise ConfigError(
            f"the report needs the 'report' extra ({err.name} is not installed)",
            fix="pip install 'cartrescue[report]'",
        ) from None
    config = _config(args, require_secrets=False)
    chosen = select_shops(config, args.shop, every=args.all)
    now = utc_now()
    since, until = now - parse_duration(args.since, key="--since"), now + timedelta(seconds=1)
    facts, engagement, reports = [], [], {}
    for shop_config in chosen:
        options = options_from(shop_config)
        with shop_config.store() as store:
            facts.append(read_facts(store, options, since=since, until=until))
            signals = read_signals(store, since=since, until=until)
        if signals is not None:
            engagement.append(signals)
        reports[shop_config.shop_key] = build_report(
            facts[-1], options, generated_at=now, signals=signals
        )
    if args.all and len(chosen) > 1:
        try:
            combined = combine_facts(facts)
        except ValueError as err:
            sys.stderr.write(f"cartrescue: no overall report: {err}, which cannot be added up\n")
        else:
            options = replace(options_from(config), shop=f"All {len(chosen)} shops")
            overall = build_report(
                combined,
                options,
                generated_at=now,
                signals=add_signals(engagement) if engagement else None,
            )
            reports = {"": overall, **reports}
    page = Path(args.out or "report.html")
    for name, report in reports.items():
        if args.csv:
            write_csv(report, Path(args.csv) / name if name else Path(args.csv))
        if args.out or not args.json:
            target = page.with_name(f"{page.stem}.{name}{page.suffix}") if name else page
            if len(reports) == 1:
                target = page
            target.write_text(render_html(report), encoding="utf-8")
            if not args.json:
                out.write(f"wrote {target}\n")
    if args.json:
        document: object = next(iter(reports.values()))
        if len(reports) > 1:
            document = {
                "shops": {k: v for k, v in reports.items() if k},
                "overall": reports.get(""),
            }
        out.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
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
    if args.action != "list" and not args.contact:
        raise ConfigError(f"optout {args.action} needs an email or phone number")
    chosen = select_shops(config, args.shop, every=args.all)
    for shop_config in chosen:
        prefix = f"{shop_config.shop_key}: " if len(chosen) > 1 else ""
        with shop_config.store() as store:
            if args.action == "list":
                for entry in store.list_optouts(args.channel):
                    out.write(
                        f"{prefix}{entry.contact}\t{entry.channel}\t{entry.source}\t"
                        f"{_fmt_time(entry.at)}\n"
                    )
                continue
            contact = _contact(args.contact)
            if args.action == "add":
                store.add_optout(contact, args.channel, "cli", utc_now())
                out.write(f"{prefix}opted out {contact} ({args.channel})\n")
            else:
                removed = store.remove_optout(contact, args.channel)
                out.write(f"{prefix}removed {removed} opt-out(s) for {contact}\n")
    return EXIT_OK


def cmd_explain(args: argparse.Namespace, out: TextIO) -> int:
    from .experiments import ExperimentPlan
    from .explain import explain, format_explanation

    config = _one_shop(_config(args, require_secrets=False), args.shop)
    kinds = [k for k in CHANNEL_KINDS if k in (config.settings.channels or {})]
    plan: ExperimentPlan | None = config.experiments()
    try:
        key = config.store_hash_key()
    except ConfigError:  # its variable is unset here: the arm cannot be predicted
        plan, key = None, None
    connector = None
    if config.policy.needs_history and config.data.get("connector"):
        try:
            connector = config.connector()
        except ConfigError as err:  # a secret unset here: history stays unknown
            out.write(f"customer history not read: {err}\n")
    with config.store() as store:
        found = explain(
            args.checkout_id,
            store,
            config.policy,
            kinds,
            utc_now(),
            shop_timezone=config.shop.timezone,
            experiments=plan,
            experiment_key=key,
            shop_name=config.shop.name,
            connector=connector,
        )
    out.write(format_explanation(found))
    return EXIT_OK if found.status is not None else EXIT_FAILED


def cmd_forget(args: argparse.Namespace, out: TextIO) -> int:
    config = _config(args, require_secrets=False)
    contact = _contact(args.contact)
    removed = 0
    for shop_config in select_shops(config, every=True):
        with shop_config.store() as store:
            removed += store.forget(contact)
    out.write(f"erased {removed} row(s) naming {contact}; an opt-out is kept as a one-way hash\n")
    return EXIT_OK


def cmd_init(args: argparse.Namespace, out: TextIO) -> int:
    if args.config is not None and args.directory is not None:
        raise ConfigError("give a folder or --config FILE, not both")
    if args.config is not None:
        config_path = Path(args.config)
        target = config_path.parent
    else:
        target = Path(args.directory or ".")
        config_path = target / DEFAULT_CONFIG
    target.mkdir(parents=True, exist_ok=True)
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
    try:
        config = _config(args)
    except ConfigError as err:  # the file itself is wrong: every mistake, as doctor lines
        for mistake in err.problems:
            fix = mistake.fix or "correct the key in the configuration file"
            where = f"{mistake.key}: " if mistake.key else ""
            out.write(f"[error] {where}{mistake.message}\n    fix: {fix}\n")
        out.write(f"{len(err.problems)} problem(s) to fix before 'cartrescue run' can work.\n")
        raise  # and on standard error, as every command reports a configuration error
    report = doctor(config)
    for check in report.checked:
        out.write(f"  ok  {check.area:<16}{check.summary}\n")
    for problem in report.problems:
        out.write(
            f"[{problem.severity}] {problem.area}: {problem.message}\n    fix: {problem.fix}\n"
        )
    warnings = len(report.problems) - len(report.errors)
    if report.errors:
        out.write(f"{len(report.errors)} problem(s) to fix before 'cartrescue run' can work.\n")
        return EXIT_CONFIG if report.config_errors else EXIT_FAILED
    out.write("All checks passed" + (f", with {warnings} warning(s).\n" if warnings else ".\n"))
    return EXIT_OK


def cmd_schema(args: argparse.Namespace, out: TextIO) -> int:
    schema = json.dumps(config_schema(), indent=2, ensure_ascii=False) + "\n"
    if args.output:
        Path(args.output).write_text(schema, encoding="utf-8")
    else:
        out.write(schema)
    return EXIT_OK


def _shop_app(config: Config, store: Store, *, links_mounted: bool) -> WSGIApplication:
    """The web app of one shop: its inbound endpoints, unsubscribe page and checkout
    webhooks (when its connector can verify them), and its short links if ``links_mounted``."""
    settings = web_settings(config.data, config.env)
    assert settings is not None  # checked by the caller on the same [web] table
    links = config.links(store) if links_mounted else None
    connector = config.connector() if config.data.get("connector") else None
    return settings.app(
        store,
        mounts={links.path: links.app()} if links else None,
        connector=connector if isinstance(connector, WebhookCapable) else None,
        shop=config.shop,
        conversations=config.conversations(store),
    )


def serve_app(
    config: Config, shop: str | None, stack: contextlib.ExitStack
) -> tuple[WSGIApplication, str]:
    """What ``cartrescue serve`` serves, and where: for a ``[[shops]]`` file every shop (or
    ``shop``) under ``/shops/NAME/``, with the short links the shops share at the path of
    ``[links] base_url``; else the one shop at ``[web] public_url``. The stores opened are
    closed with ``stack``."""
    settings = web_settings(config.data, config.env)
    if settings is None:
        raise ConfigError(
            "add a [web] table with public_url (and the *_env keys of the endpoints you use)",
            key="web",
        )
    if not config.shops:
        select_shops(config, shop)  # --shop on a single-shop file: say so
        store = config.store()
        stack.callback(store.close)
        return _shop_app(config, store, links_mounted=True), settings.public_url
    apps: dict[str, WSGIApplication] = {}
    links: list[SelfHostedLinks] = []
    for shop_config in select_shops(config, shop, every=True):
        store = shop_config.store()
        stack.callback(store.close)
        apps[shop_config.shop_key] = _shop_app(shop_config, store, links_mounted=False)
        if (shop_links := shop_config.links(store)) is not None:
            links.append(shop_links)
    app = make_shops_app(
        apps,
        public_url=settings.public_url,
        mounts={links[0].path: shops_redirect_app(links)} if links else None,
    )
    return app, ", ".join(f"{settings.public_url}/shops/{name}/" for name in apps)


def cmd_serve(args: argparse.Namespace, out: TextIO) -> int:
    config = _config(args)
    with contextlib.ExitStack() as stack:
        app, where = serve_app(config, args.shop, stack)
        settings = web_settings(config.data, config.env)
        assert settings is not None  # serve_app said so otherwise
        host = args.host or settings.host
        port = settings.port if args.port is None else args.port
        name: ServerName = args.server or ("waitress" if waitress_installed() else "wsgiref")
        if name == "waitress" and not waitress_installed():
            raise ConfigError(
                "--server waitress needs waitress: pip install 'cartrescue[waitress]'",
                key="serve.server",
            )

        def ready(server: Server) -> None:
            out.write(
                f"serving {where} on http://{host}:{server.server_port}/ "
                f"with {name} (Ctrl-C stops)\n"
            )
            out.flush()

        try:
            serve(app, host, port, ready=ready, server=name)
        except KeyboardInterrupt:
            out.write("stopped\n")
        except OSError as err:
            raise ConfigError(f"cannot listen on {host}:{port}: {err}", key="web.port") from err
    return EXIT_OK


def _preview_config(args: argparse.Namespace) -> Config | None:
    """``preview``'s configuration: ``--config FILE``, else ./cartrescue.toml when it exists."""
    if args.config is not None:
        return load_config(args.config, require_secrets=False)
    default = Path(DEFAULT_CONFIG)
    return load_config(default, require_secrets=False) if default.is_file() else None


def _preview_row(row: PreviewRow, out: TextIO) -> None:
    out.write(preview_line(row) + "\n")
    for line in preview_body(row):
        out.write(f"    | {line}".rstrip() + "\n")


def cmd_preview(args: argparse.Namespace, out: TextIO) -> int:
    config = _preview_config(args)
    if config is not None:
        config = _one_shop(config, args.shop)
    elif args.shop is not None:
        raise ConfigError(
            f"--shop {args.shop}: no configuration to read it from",
            fix="pass --config FILE, or run in the folder of cartrescue.toml",
        )
    setup = preview_setup(config, shop=demo_shop(), link=args.link)
    renderer = setup.renderer
    steps = setup.steps
    if args.step:
        steps = [(n, p) for n, p in steps if n in args.step]
    missing = [d for d in renderer.template_dirs if not d.is_dir()]
    locales = args.locale or renderer.locales()
    rows = preview(
        renderer,
        shop=setup.shop,
        link=setup.link,
        locales=locales,
        steps=steps,
        channels=args.channel or CHANNEL_KINDS,
    )
    out.write(setup.header)
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
        _preview_row(row, out)
    sample_step = offer_step(steps)
    if sample_step is not None:
        out.write(
            f"\nEach offer kind at step {sample_step}, worst-case data (remaining: a cart "
            "below [shop] free_shipping_threshold, no offer):\n"
        )
        samples = offer_samples(
            renderer,
            shop=setup.shop,
            link=setup.link,
            locales=locales,
            step=sample_step,
            channels=args.channel or CHANNEL_KINDS,
        )
        for row in samples:
            _preview_row(row, out)
        rows += samples
    bad = [r for r in rows if not r.fits]
    out.write(
        f"\n{len(rows)} message(s) rendered: {len(rows) - len(bad)} fit, {len(bad)} do not.\n"
    )
    if any(r.channel == "sms" and r.length is not None for r in bad):
        out.write(
            "An SMS that does not fit is not sent. Add a shorter variant to the template, "
            "or set [links] base_url to a short address so the link takes less room.\n"
        )
    if args.html:
        written = write_html(rows, args.html)
        out.write(f"wrote {len(written)} HTML email(s) to {args.html}/ to open in a browser\n")
    return EXIT_FAILED if bad else EXIT_OK


def cmd_test_send(args: argparse.Namespace, out: TextIO) -> int:
    config = _one_shop(_config(args), args.shop)
    with config.store() as store:
        recovery = config.recovery(store=store)
        result = send_test(
            recovery, to=args.to, step=args.step, channel=args.channel, locale=args.locale
        )
    message = result.message
    out.write(
        f"--- test {message.channel} to {mask_contact(message.to)} · step {message.step}"
        f" · locale {message.locale}\n"
    )
    if message.content.subject:
        out.write(f"Subject: {message.content.subject}\n")
    if message.content.template:
        out.write(f"[WhatsApp template {message.content.template}]\n")
    out.write(message.content.text.rstrip() + "\n")
    if result.receipt is not None:
        receipt = result.receipt
        out.write(
            f"sent via {receipt.provider}"
            + (f" (id {receipt.provider_id})" if receipt.provider_id else "")
            + "; recorded as a test, apart from the outbox\n"
        )
        return EXIT_OK
    error = result.error
    provider = getattr(error, "provider", None) or message.channel
    out.write(f"NOT SENT: {provider} refused it: {mask_text(str(error))}\n")
    return EXIT_FAILED


def cmd_serve_links(args: argparse.Namespace, out: TextIO) -> int:
    config = _config(args)
    with contextlib.ExitStack() as stack:
        every: list[SelfHostedLinks] = []
        for shop_config in select_shops(config, every=True):
            store = shop_config.store()
            stack.callback(store.close)
            if (shop_links := shop_config.links(store)) is not None:
                every.append(shop_links)
        if not every:
            raise ConfigError("add a [links] table with base_url to serve short links", key="links")
        links = every[0]
        # The shops of a [[shops]] file share [links]: each code is answered by its shop.
        app = links.app() if len(every) == 1 else shops_redirect_app(every)

        def ready(server: Server) -> None:
            out.write(
                f"Serving the short links of {links.base_url} on "
                f"http://{args.host}:{server.server_port}{links.path} (Ctrl-C stops)\n"
            )
            out.flush()

        with contextlib.suppress(KeyboardInterrupt):
            serve(app, args.host, args.port, ready=ready)
    return EXIT_OK
