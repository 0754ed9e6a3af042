from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from cartrescue.channels.console import ConsoleChannel
from cartrescue.config import load_config, parse_duration
from cartrescue.demo import DemoConnector
from cartrescue.errors import ConfigError
from cartrescue_testing.memory import MemoryChannel

DEMO = 'type = "cartrescue.demo:DemoConnector"'
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
            "policy.steps[1].channels[1]",
        ),
        (
            BASE + '[[policy.steps]]\ndelay = "1h"\ndiscount = { percent = 150 }\n',
            "policy.steps[1].discount.percent",
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
        '[channels.sms]\ntype = "console"',
        '[channels.sms]\ntype = "twilio"\naccount_sid = "AC' + "0" * 32 + '"\n'
        'auth_token_env = "MY_TOKEN"\nfrom_number = "+4790000000"',
    )
    with pytest.raises(ConfigError) as info:
        load(text, env={})
    assert info.value.key == "channels.sms.auth_token_env"
    assert "MY_TOKEN is not set" in str(info.value)
    channel = load(text, env={"MY_TOKEN": "s3cret-token"}).channels()["sms"]
    assert channel._auth == ("AC" + "0" * 32, "s3cret-token")


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
        ("1.5h", timedelta(minutes=90)),
        ("45s", timedelta(seconds=45)),
    ],
)
def test_durations(value, expected):
    assert parse_duration(value, key="k") == expected


def test_store_path_is_relative_to_the_config_file(tmp_path):
    path = tmp_path / "shop" / "cartrescue.toml"
    path.parent.mkdir()
    path.write_text(BASE + '[store]\npath = "data/s.sqlite3"\n')
    assert load_config(path, env={}).store_path() == str(tmp_path / "shop" / "data" / "s.sqlite3")


# --- every mistake at once -------------------------------------------------------------------

FIVE_MISTAKES = """
[shop]
name = "Nordlys"
timezone = "Mars/Olympus"

[connector]
type = "shopify"
shop = "nordlys.myshopify.com"
token_env = "SHOPIFY_TOKEN"

[channels.sms]
type = "twilio"
acount_sid = "AC00000000000000000000000000000000"
auth_token_env = "TWILIO_TOKEN"
from_number = "+4790000000"

[templates]
max_segments = 20

[[policy.steps]]
delay = 60
"""

FIVE_EXPECTED = {
    "shop.timezone": 'write a zone such as "Europe/Oslo"',
    "connector.token_env": "set SHOPIFY_TOKEN in the environment",
    "channels.sms.acount_sid": "did you mean account_sid?",
    "templates.max_segments": "use a value from 1 to 10",
    "policy.steps[1].delay": 'write delay = "60m" or "60s"',
}


def test_five_mistakes_are_reported_at_once_each_with_its_key_and_fix():
    with pytest.raises(ConfigError) as info:
        load(FIVE_MISTAKES, env={"TWILIO_TOKEN": "t0ken-value"})
    problems = {p.key: p for p in info.value.problems}
    assert set(problems) == set(FIVE_EXPECTED), str(info.value)
    for key, fix in FIVE_EXPECTED.items():
        assert fix in problems[key].fix, problems[key]
    lines = str(info.value).splitlines()
    assert lines[0] == "5 problems in the configuration:"
    for key in FIVE_EXPECTED:
        [line] = [line for line in lines if line.strip().startswith(f"{key}:")]
        assert line.count(key) == 1, line  # the key is printed once
        assert " — fix: " in line
    assert "t0ken-value" not in str(info.value)


@pytest.mark.parametrize("command", ["doctor", "run"])
def test_doctor_and_run_report_all_five_and_exit_3(command, tmp_path, monkeypatch, capsys):
    from cartrescue.cli import EXIT_CONFIG, main

    path = tmp_path / "cartrescue.toml"
    path.write_text(FIVE_MISTAKES, encoding="utf-8")
    monkeypatch.delenv("SHOPIFY_TOKEN", raising=False)
    monkeypatch.setenv("TWILIO_TOKEN", "t0ken-value")
    assert main([command, "--config", str(path)]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert f"5 problems in {path}" in err
    for key, fix in FIVE_EXPECTED.items():
        [line] = [line for line in err.splitlines() if line.strip().startswith(f"{key}:")]
        assert fix in line
    assert not (tmp_path / "cartrescue.sqlite3").exists()


SHOPIFY = '[connector]\ntype = "shopify"\nshop = "s.myshopify.com"\ntoken_env = "T"\n'
ENV = {"T": "tok"}


@pytest.mark.parametrize(
    ("text", "key", "suggestion"),
    [
        (SHOPIFY.replace("token_env", "tokn_env"), "connector.tokn_env", "token_env"),
        (SHOPIFY.replace("token_env", "token_evn"), "connector.token_evn", "token_env"),
        (SHOPIFY.replace("token_env", "tokens_env"), "connector.tokens_env", "token_env"),
        (SHOPIFY.replace("shop =", "shpo ="), "connector.shpo", "shop"),
        (SHOPIFY + "line_item = 5\n", "connector.line_item", "line_items"),
        (BASE + '[policy]\nfrequnecy_cap = "20h"\n', "policy.frequnecy_cap", "frequency_cap"),
        (BASE.replace("timezone =", "time_zone ="), "shop.time_zone", "timezone"),
        (BASE + '[polcy]\nlookback = "1h"\n', "polcy", "policy"),
        (BASE + "[templates]\nmax_segment = 2\n", "templates.max_segment", "max_segments"),
        (BASE + "[web]\npublic_ur = 'https://x.example'\n", "web.public_ur", "public_url"),
        (
            BASE.replace('type = "console"', 'type = "console"\nmsk = false'),
            "channels.sms.msk",
            "mask",
        ),
        (
            # a plugin without a settings model: its constructor's keys, never its internals
            BASE.replace(DEMO, DEMO + '\ndta = "x.json"'),
            "connector.dta",
            "data",
        ),
    ],
)
def test_a_typo_suggests_the_nearest_setting(text, key, suggestion):
    with pytest.raises(ConfigError) as info:
        load(text, env=ENV)
    [problem] = [p for p in info.value.problems if p.key == key]
    assert problem.fix.startswith(f"did you mean {suggestion}?"), problem
    assert len(info.value.problems) == 1, str(info.value)  # not also "missing"


@pytest.mark.parametrize(
    "text",
    [
        SHOPIFY + "sleep = 1\n",
        SHOPIFY + "clok = 1\n",
        SHOPIFY + "sesion = 1\n",
        BASE.replace(DEMO, DEMO + "\nclok = 1"),
    ],
)
def test_suggestions_never_name_python_internals(text):
    with pytest.raises(ConfigError) as info:
        load(text, env=ENV)
    fix = info.value.problems[0].fix
    for internal in ("clock", "monotonic", "session", "sleep"):
        assert internal not in fix, fix


def test_a_secret_written_in_the_file_is_pointed_to_its_env_key():
    with pytest.raises(ConfigError) as info:
        load(BASE + "[web]\npublic_url = 'https://x.example'\nunsubscribe_secret = 'abc'\n")
    assert info.value.key == "web.unsubscribe_secret"
    assert info.value.fix.startswith('write unsubscribe_secret_env = "VARIABLE"')
    assert "abc" not in str(info.value)


@pytest.mark.parametrize(
    ("line", "key", "fix"),
    [
        ("[[policy.steps]]\ndelay = 60", "policy.steps[1].delay", 'write delay = "60m" or "60s"'),
        ("[[policy.steps]]\ndelay = 1.5", "policy.steps[1].delay", 'write delay = "1.5m" or'),
        ("[run]\ninterval = 15", "run.interval", 'write interval = "15m" or "15s"'),
        ("[policy]\nmax_overdue = 6", "policy.max_overdue", 'write max_overdue = "6m" or "6s"'),
        ("[policy]\nlookback = 'a day'", "policy.lookback", 'write lookback = "24h"'),
        ("[policy]\nfrequency_cap = true", "policy.frequency_cap", 'write frequency_cap = "20h"'),
        ("[links]\nbase_url = 'https://s.no/'\nexpires_after = 30", "links.expires_after", ""),
        (
            "[[policy.steps]]\ndelay = '1h'\ndiscount = { percent = 10, valid_for = 48 }",
            "policy.steps[1].discount.valid_for",
            'write valid_for = "48m" or "48s"',
        ),
    ],
)
def test_a_duration_needs_its_unit(line, key, fix):
    with pytest.raises(ConfigError) as info:
        load(BASE + line + "\n")
    assert info.value.key == key, str(info.value)
    assert info.value.fix.startswith(fix), info.value.fix


@pytest.mark.parametrize("value", [60, 0, 3600, 1.5])
def test_parse_duration_refuses_a_bare_number(value):
    with pytest.raises(ConfigError) as info:
        parse_duration(value, key="policy.lookback")
    assert info.value.key == "policy.lookback"
    assert info.value.fix == f'write lookback = "{value}m" or "{value}s"'


@pytest.mark.parametrize(
    ("env", "message", "fix"),
    [
        ({}, "environment variable SHOP_TOKEN is not set", "set SHOP_TOKEN in the environment"),
        ({"SHOP_TOKEN": ""}, "environment variable SHOP_TOKEN is not set", "set SHOP_TOKEN"),
        ({"OTHER": "x"}, "SHOP_TOKEN is not set", "set SHOP_TOKEN"),
    ],
)
def test_a_missing_environment_variable_is_a_problem(env, message, fix):
    text = SHOPIFY.replace('token_env = "T"', 'token_env = "SHOP_TOKEN"')
    with pytest.raises(ConfigError) as info:
        load(text, env=env)
    [problem] = info.value.problems
    assert problem.key == "connector.token_env"
    assert message in problem.message
    assert problem.fix.startswith(fix)


@pytest.mark.parametrize(
    ("table", "key", "message"),
    [
        ('token_env = "lower case ok?"', "connector.token_env", "the name of an environment"),
        ("token_env = 5", "connector.token_env", "the name of an environment"),
        ('token = "x"\ntoken_env = "T"', "connector.token_env", "both token and token_env"),
    ],
)
def test_an_env_key_must_name_one_variable(table, key, message):
    text = '[connector]\ntype = "shopify"\nshop = "s.myshopify.com"\n' + table + "\n"
    with pytest.raises(ConfigError) as info:
        load(text, env=ENV)
    assert info.value.key == key
    assert message in info.value.message


def test_a_secret_value_is_never_shown_in_an_error():
    secret = "short-secret"
    text = BASE + (
        '[channels.email]\ntype = "webhook"\nurl = "https://h.example/x"\nsecret_env = "HOOK"\n'
    )
    with pytest.raises(ConfigError) as info:
        load(text, env={"HOOK": secret})
    assert info.value.key == "channels.email.secret"
    assert secret not in str(info.value)
    assert "not shown" in str(info.value)


def test_a_missing_required_secret_asks_for_its_env_key():
    with pytest.raises(ConfigError) as info:
        load('[connector]\ntype = "shopify"\nshop = "s.myshopify.com"\n')
    assert info.value.key == "connector.token"
    assert info.value.fix.startswith('add token_env = "VARIABLE"')


def test_a_wrong_choice_suggests_the_nearest():
    with pytest.raises(ConfigError) as info:
        load(SHOPIFY + 'api = "graphq"\n', env=ENV)
    assert info.value.key == "connector.api"
    assert info.value.fix == 'write api = "graphql"'


def test_a_syntax_error_has_a_syntax_fix():
    with pytest.raises(ConfigError) as info:
        load("[shop\nname=")
    assert "line and column" in info.value.fix


@pytest.mark.parametrize(
    ("table", "key", "fix"),
    [
        (
            '[channels.sms]\ntype = "twilio"\naccount_sid = "AC' + "0" * 32 + '"\n'
            'auth_token_env = "T"\n',
            "channels.sms.from_number",
            'add from_number = "+4790000000" or messaging_service_sid',
        ),
        (
            '[channels.email]\ntype = "smtp"\nhost = "smtp.example.com"\nsender = "a@b.example"\n'
            'username = "a@b.example"\n',
            "channels.email.password",
            'add password_env = "SMTP_PASSWORD"',
        ),
    ],
)
def test_rules_across_keys_name_the_key_to_fix(table, key, fix):
    with pytest.raises(ConfigError) as info:
        load(table, env=ENV)
    assert [p.key for p in info.value.problems] == [key]
    assert info.value.fix.startswith(fix)


@pytest.mark.parametrize(
    ("name", "fix"),
    [
        ("shopfy", 'did you mean type = "shopify"?'),
        ("woocomerce", 'did you mean type = "woocommerce"?'),
        ("zzzz", "install the package that provides it"),
    ],
)
def test_an_unknown_plugin_suggests_the_nearest_installed(name, fix):
    with pytest.raises(ConfigError) as info:
        load(BASE.replace(DEMO, f'type = "{name}"'))
    assert info.value.key == "connector.type"
    assert "shopify" in info.value.message  # the installed ones are listed once
    assert info.value.fix == fix or info.value.fix.startswith(fix)
