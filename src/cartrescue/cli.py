"""The ``cartrescue`` command: its arguments, logging and exit codes. What each command does
is in :mod:`cartrescue._commands`, imported once a command runs, so ``cartrescue --help``
loads no platform, provider or store code."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from importlib import import_module
from typing import Any, TextIO

from . import logsafe
from ._version import __version__
from .errors import CartRescueError, ConfigError
from .models import CHANNEL_KINDS

__all__ = ["EXIT_CONFIG", "EXIT_FAILED", "EXIT_OK", "main"]

EXIT_OK = 0
EXIT_FAILED = 1
"""The pass did not complete, or a check found problems."""
EXIT_USAGE = 2
EXIT_CONFIG = 3
"""The configuration is wrong: nothing ran."""
DEFAULT_CONFIG = "cartrescue.toml"
"""The file every command reads (``init`` writes) when no ``--config`` is given."""

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

    def add(name: str, handler: str, help_text: str) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.set_defaults(handler=handler)
        return command

    def with_config(command: argparse.ArgumentParser) -> None:
        command.add_argument(
            "--config",
            "-c",
            default=DEFAULT_CONFIG,
            metavar="FILE",
            help="the configuration file (default: ./cartrescue.toml)",
        )

    def with_shop(command: argparse.ArgumentParser, help_text: str) -> None:
        command.add_argument("--shop", metavar="NAME", help=help_text)

    run = add("run", "cmd_run", "one recovery pass: fetch, decide, send, record")
    with_config(run)
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="render and print what would be sent; send and record nothing",
    )
    which = run.add_mutually_exclusive_group()
    which.add_argument("--shop", metavar="NAME", help="run this [[shops]] entry only")
    which.add_argument("--all", action="store_true", help="run every [[shops]] entry in turn")
    demo = add(
        "demo", "cmd_demo", "a full pass against a made-up shop, printed; no network, no config"
    )
    demo.add_argument("--store", help="keep the demo's store in this file (default: in memory)")
    demo.add_argument(
        "--config",
        "-c",
        metavar="FILE",
        help="use this file's [shop], [policy], [templates] and [links] with the made-up "
        "checkouts; nothing is sent (default: none, so the demo is the same everywhere)",
    )
    stats = add(
        "stats", "cmd_stats", "checkouts, messages, conversions and the last completed pass"
    )
    with_config(stats)
    stats.add_argument("--json", action="store_true", help="print JSON")
    which = stats.add_mutually_exclusive_group()
    which.add_argument(
        "--shop", metavar="NAME", help="one [[shops]] entry (default: every shop, added up)"
    )
    which.add_argument(
        "--all", action="store_true", help="each [[shops]] entry, then every shop added up"
    )
    report = add(
        "report",
        "cmd_report",
        "KPIs, attributed and incremental revenue, experiments: an HTML page, CSV or JSON",
    )
    with_config(report)
    report.add_argument(
        "--since", default="30d", help="checkouts abandoned this long ago (default: 30d)"
    )
    report.add_argument("--out", "-o", metavar="FILE", help="the HTML page (default report.html)")
    report.add_argument("--csv", metavar="DIR", help="also write the tables as CSV files here")
    report.add_argument("--json", action="store_true", help="print the figures as JSON")
    which = report.add_mutually_exclusive_group()
    which.add_argument("--shop", metavar="NAME", help="the report of this [[shops]] entry")
    which.add_argument(
        "--all",
        action="store_true",
        help="each [[shops]] entry's report (report.NAME.html, CSV in DIR/NAME) and the overall",
    )
    optout = add("optout", "cmd_optout", "add, remove or list opt-outs")
    optout.add_argument("action", choices=("add", "remove", "list"))
    optout.add_argument("contact", nargs="?", help="email or +E.164 phone number")
    optout.add_argument("--channel", default="*", choices=("*", *CHANNEL_KINDS))
    with_config(optout)
    which = optout.add_mutually_exclusive_group()
    which.add_argument("--shop", metavar="NAME", help="the opt-outs of this [[shops]] entry")
    which.add_argument("--all", action="store_true", help="in every [[shops]] entry")
    explain_cmd = add(
        "explain",
        "cmd_explain",
        "the decision trail for one stored checkout: segment, step, channel, holds, incentive",
    )
    explain_cmd.add_argument("checkout_id", metavar="CHECKOUT_ID")
    with_config(explain_cmd)
    with_shop(explain_cmd, "the [[shops]] entry whose checkout it is")
    forget = add("forget", "cmd_forget", "erase everything the store knows about a person (GDPR)")
    forget.add_argument("contact", help="email or +E.164 phone number")
    with_config(forget)
    init = add("init", "cmd_init", "write a commented cartrescue.toml and templates to customise")
    init.add_argument(
        "directory", nargs="?", help="write DIR/cartrescue.toml and DIR/templates/ (default: .)"
    )
    init.add_argument(
        "--config",
        "-c",
        metavar="FILE",
        help="the file to write, templates/ beside it (default: ./cartrescue.toml)",
    )
    init.add_argument("--force", action="store_true", help="overwrite existing files")
    doctor = add(
        "doctor", "cmd_doctor", "read-only checks of config, credentials, templates, schedule"
    )
    with_config(doctor)
    schema = add(
        "schema",
        "cmd_schema",
        "print the JSON Schema of cartrescue.toml (installed plugins included) for editors",
    )
    schema.add_argument("--output", "-o", metavar="FILE", help="write it to FILE instead")
    serve_command = add(
        "serve",
        "cmd_serve",
        "serve the [web] endpoints: Twilio and WhatsApp webhooks, one-click unsubscribe",
    )
    with_config(serve_command)
    serve_command.add_argument("--host", help="address to listen on (default: [web] host)")
    serve_command.add_argument(
        "--port", type=int, help="port to listen on (default: [web] port, 8080)"
    )
    with_shop(serve_command, "serve this [[shops]] entry only (default: every shop)")
    serve_command.add_argument(
        "--server",
        choices=("waitress", "wsgiref"),
        help="the WSGI server (default: waitress when installed, else the standard library's)",
    )
    preview_cmd = add(
        "preview",
        "cmd_preview",
        "render every template with sample and worst-case data; show SMS length and fit",
    )
    preview_cmd.add_argument(
        "--config",
        "-c",
        metavar="FILE",
        help="use this configuration's templates, shop, steps and [links] "
        "(default: ./cartrescue.toml if it exists, else the package's templates alone)",
    )
    preview_cmd.add_argument(
        "--html", metavar="DIR", help="also write each email's HTML to DIR, to open in a browser"
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
    with_shop(preview_cmd, "this [[shops]] entry's templates, shop and steps")
    test_send = add(
        "test-send",
        "cmd_test_send",
        "send one real message of a step, marked [TEST], to your own number or address",
    )
    with_config(test_send)
    test_send.add_argument(
        "--to", required=True, metavar="CONTACT", help="your +E.164 number or email address"
    )
    test_send.add_argument(
        "--step", type=int, default=1, metavar="N", help="the step to send (default: 1)"
    )
    test_send.add_argument(
        "--channel",
        choices=CHANNEL_KINDS,
        help="the channel (default: the step's first configured channel that reaches --to)",
    )
    test_send.add_argument(
        "--locale", metavar="L", help="the language of the message (default: [shop] locale)"
    )
    with_shop(test_send, "send through this [[shops]] entry's channels and templates")
    serve_links = add(
        "serve-links",
        "cmd_serve_links",
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
        handler: Handler = getattr(import_module("._commands", __package__), args.handler)
        code: int = handler(args, stream)
    except ConfigError as err:
        sys.stderr.write(f"cartrescue: configuration error: {err}\n")
        return EXIT_CONFIG
    except CartRescueError as err:
        sys.stderr.write(f"cartrescue: {err}\n")
        return EXIT_FAILED
    return code


def __getattr__(name: str) -> Any:
    # The commands' functions (``cmd_run``, ``serve_app``, ``init_config_text``, …) stay
    # importable from here, as before the split.
    if name.startswith("_"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module("._commands", __package__), name)


if __name__ == "__main__":
    raise SystemExit(main())
