from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from cartrescue.channels.console import ConsoleChannel
from cartrescue.config import load_config, parse_duration
from cartrescue.demo import DemoConnector
from cartrescue.errors import ConfigError
from cartrescue_testing.memory import MemoryChannel

BASE = """
[shop]
name = "Nordlys"
timezone = "Europe/Oslo"
[connector]
type = "cartrescue.demo:DemoConnector"
[channels.sms]
type = "console"
"""


def load(text: str, env: dict[str, str] | None = None):
    return load_config(None, text=text, env=env or {})


def test_minimal_config_builds_everything():
    config = load(BASE)
    assert isinstance(config.connector(), DemoConnector)
    channels = config.channels()
    assert isinstance(channels["sms"], ConsoleChannel) and channels["sms"].kind == "sms"
    assert config.shop.name == "Nordlys"
    config.validate()


def test_example_config_is_what_init_writes():
    from pathlib import Path

    from cartrescue.cli import init_config_text

    example = Path(__file__).resolve().parent.parent / "examples" / "cartrescue.toml"
    assert example.read_text(encoding="utf-8") == init_config_text()
    config = load_config(example, env={})
    config.validate()
    assert [s.delay for s in config.policy.steps] == [
        timedelta(hours=1),
        timedelta(hours=24),
        timedelta(hours=48),
    ]
    assert config.policy.steps[2].discount is not None
    assert config.policy.steps[2].discount.percent == Decimal(10)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (BASE + "[nonsense]\n", "nonsense"),
        (
            BASE.replace('type = "cartrescue.demo:DemoConnector"', 'type = "nosuch"'),
            "connector.type",
        ),
        (BASE + 'colour = "blue"\n', "channels.sms.colour"),
        (BASE.replace('timezone = "Europe/Oslo"', 'timezone = "Mars/Olympus"'), "shop.timezone"),
        (BASE + '[policy]\nquiet_hours = "21:00-08:00"\n', "policy.quiet_hours"),
        (BASE + '[policy]\nmax_overdue = "six hours"\n', "policy.max_overdue"),
        (BASE + '[policy]\nfrequnecy_cap = "20h"\n', "policy.frequnecy_cap"),
        (
            BASE + '[[policy.steps]]\ndelay = "1h"\nchannels = ["pigeon"]\n',
            "policy.steps[1].channels",
        ),
        (
            BASE + '[[policy.steps]]\ndelay = "1h"\ndiscount = { percent = 150 }\n',
            "policy.steps[1].discount",
        ),
        (BASE + '[channels.fax]\ntype = "console"\n', "channels.fax"),
    ],
)
def test_bad_config_names_the_key(text, key):
    with pytest.raises(ConfigError) as info:
        config = load(text)
        config.validate()
    assert info.value.key == key, str(info.value)
    assert key in str(info.value)


def test_secrets_come_from_named_environment_variables():
    text = BASE.replace(
        '[channels.sms]\ntype = "console"', '[channels.sms]\ntype = "console"\nkind_env = "MY_KIND"'
    )
    with pytest.raises(ConfigError) as info:
        load(text, env={}).channels()
    assert info.value.key == "channels.sms.kind_env"
    assert "MY_KIND is not set" in str(info.value)


def test_plugin_by_dotted_path():
    text = BASE.replace('type = "console"', 'type = "cartrescue_testing.memory:MemoryChannel"')
    config = load(text)
    assert isinstance(config.connector(), DemoConnector)  # BASE names it by path, too
    assert isinstance(config.channels()["sms"], MemoryChannel)


def test_not_toml():
    with pytest.raises(ConfigError, match="not valid TOML"):
        load("[shop\nname=")


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cartrescue init"):
        load_config(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("90m", timedelta(minutes=90)),
        ("1h30m", timedelta(minutes=90)),
        ("2d", timedelta(days=2)),
        (3600, timedelta(hours=1)),
        ("1.5h", timedelta(minutes=90)),
    ],
)
def test_durations(value, expected):
    assert parse_duration(value, key="k") == expected


def test_store_path_is_relative_to_the_config_file(tmp_path):
    path = tmp_path / "shop" / "cartrescue.toml"
    path.parent.mkdir()
    path.write_text(BASE + '[store]\npath = "data/s.sqlite3"\n')
    assert load_config(path, env={}).store_path() == str(tmp_path / "shop" / "data" / "s.sqlite3")
