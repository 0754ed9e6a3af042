"""Every command honours ``--config FILE`` and its documented default, ./cartrescue.toml."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import pytest

from cartrescue.cli import EXIT_FAILED, EXIT_OK, build_parser, main

SHOP = '[shop]\nname = "Testbutikk"\nlocale = "nb"\n[links]\nbase_url = "https://s.no/"\n'


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), out=out)
    return code, out.getvalue()


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


OPERATOR_COMMANDS = (
    "run", "demo", "stats", "optout", "forget", "init", "doctor", "serve", "preview",
    "serve-links",
)  # fmt: skip


@pytest.mark.parametrize("name", OPERATOR_COMMANDS)
def test_every_command_takes_config(name):
    command = _commands()[name]
    options = {o for a in command._actions for o in a.option_strings}
    assert {"--config", "-c"} <= options, f"{name} does not take --config"


def test_preview_reads_the_default_config_file(tmp_path, monkeypatch):
    """The owner's broken template in ./cartrescue.toml's folder must not pass as 'fits'."""
    folder = tmp_path / "templates" / "sms"
    folder.mkdir(parents=True)
    (folder / "1.nb.j2").write_text("{{ shop_name }}: {{ nope }}", encoding="utf-8")
    (tmp_path / "cartrescue.toml").write_text(SHOP + '[templates]\ndirs = ["templates"]\n')
    monkeypatch.chdir(tmp_path)
    code, out = run("preview", "--channel", "sms", "--step", "1", "--locale", "nb")
    assert code == EXIT_FAILED, out
    assert "cartrescue.toml; your templates:" in out
    assert "'nope' is undefined" in out
    assert "Shop 'Testbutikk'" in out


def test_preview_shows_the_whole_email_and_writes_its_html(tmp_path):
    config = tmp_path / "cartrescue.toml"
    config.write_text(SHOP)
    html = tmp_path / "html"
    code, out = run(
        "preview", "-c", str(config), "--channel", "email", "--step", "1", "--locale", "nb",
        "--html", str(html),
    )  # fmt: skip
    assert code == EXIT_OK, out
    assert "    | Subject: " in out
    assert "    | -- text --" in out and "    | -- HTML --" in out
    assert "    | <!doctype html>" in out.lower() or "    | <html" in out.lower()
    files = sorted(p.name for p in html.iterdir())
    # the step's two samples, and each offer kind's (at the one step previewed)
    assert files == [
        f"email-1-nb-{sample}.html"
        for sample in ("amount", "free-ship", "percent", "remaining", "typical", "worst-case")
    ]
    page = (html / "email-1-nb-typical.html").read_text(encoding="utf-8")
    assert "Testbutikk" in page and "</html>" in page.lower()


def test_demo_takes_a_config(tmp_path):
    config = tmp_path / "cartrescue.toml"
    config.write_text(SHOP)
    code, out = run("demo", "--config", str(config))
    assert code == EXIT_OK, out
    assert "Testbutikk: Hei Kari!" in out
    assert "https://s.no/" in out


def test_init_writes_the_file_config_names(tmp_path):
    target = tmp_path / "shop" / "nordlys.toml"
    code, out = run("init", "--config", str(target))
    assert code == EXIT_OK, out
    assert target.is_file()
    assert (target.parent / "templates" / "sms").is_dir()
    assert run("doctor", "--config", str(target))[0] == EXIT_OK


def test_init_refuses_a_folder_and_a_config(tmp_path):
    assert run("init", str(tmp_path), "--config", str(tmp_path / "x.toml"))[0] == 3


@pytest.mark.parametrize("command", ["stats", "doctor", "run"])
def test_commands_read_the_default_file(tmp_path, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    assert run("init")[0] == EXIT_OK
    assert Path("cartrescue.toml").is_file()
    code, _ = run(command)
    assert code == EXIT_OK
