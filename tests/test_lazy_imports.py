"""``import cartrescue`` stays cheap: heavy libraries and providers load on first use."""

from __future__ import annotations

import subprocess
import sys

import pytest

import cartrescue
import cartrescue.channels

HEAVY = (
    "babel",
    "cryptography",
    "jinja2",
    "phonenumbers",
    "pydantic",
    "regex",
    "requests",
    "cartrescue.channels",
    "cartrescue.connectors",
    "cartrescue.engine",
    "cartrescue.render",
)


def _loaded_after(code: str, modules: tuple[str, ...]) -> list[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(m for m in {modules!r} if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True
    )
    return result.stdout.split()


def test_import_cartrescue_loads_none_of_the_heavy_modules() -> None:
    assert _loaded_after("import cartrescue", HEAVY) == []


def test_a_name_loads_its_module_on_first_use() -> None:
    loaded = _loaded_after("import cartrescue\ncartrescue.TemplateRenderer", HEAVY)
    assert "cartrescue.render" in loaded
    assert "jinja2" not in loaded  # not until a renderer is built
    assert "requests" not in loaded


def test_rendering_modules_load_jinja_and_babel_only_when_used() -> None:
    code = "import cartrescue.render, cartrescue.sms"
    assert _loaded_after(code, ("jinja2", "babel", "regex")) == []


def test_one_channel_does_not_load_the_other_providers() -> None:
    loaded = _loaded_after(
        "from cartrescue.channels import ConsoleChannel",
        ("cartrescue.channels.twilio", "cartrescue.channels.whatsapp", "cartrescue.channels.email"),
    )
    assert loaded == []


@pytest.mark.parametrize("module", [cartrescue, cartrescue.channels])
def test_every_exported_name_resolves_and_unknown_names_raise(module: object) -> None:
    for name in module.__all__:  # type: ignore[attr-defined]
        assert getattr(module, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        module.Nope  # type: ignore[attr-defined]  # noqa: B018


def test_star_import_gives_every_public_name() -> None:
    code = (
        "from cartrescue import *\nimport cartrescue\n"
        "assert all(name in globals() for name in cartrescue.__all__)"
    )
    assert _loaded_after(code, ("cartrescue.config",)) == ["cartrescue.config"]


def test_cartrescue_help_loads_no_command_code() -> None:
    # ``cartrescue --help`` builds the parser only; the commands load once one runs.
    code = (
        "import contextlib, io\n"
        "from cartrescue.cli import main\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['--help'])"
    )
    heavy = (*HEAVY[:-4], "cartrescue._commands", "cartrescue.config", "cartrescue.engine")
    assert _loaded_after(code, tuple(m for m in heavy if m != "phonenumbers")) == []


def test_the_commands_stay_importable_from_the_cli_module() -> None:
    from cartrescue import cli

    assert callable(cli.serve_app)
    assert cli.init_config_text().startswith("#")
    with pytest.raises(AttributeError):
        cli._no_such_name  # noqa: B018
