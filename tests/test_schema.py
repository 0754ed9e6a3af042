"""`cartrescue schema`: the JSON Schema editors validate cartrescue.toml with."""

from __future__ import annotations

import io
import json
import re
import tomllib
from pathlib import Path

import pytest
from jsonschema import Draft7Validator

from cartrescue.cli import EXIT_OK, main

from .conftest import restored_logging

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def validator() -> Draft7Validator:
    out = io.StringIO()
    with restored_logging():  # module-scoped: the per-test fixture does not cover it
        assert main(["schema"], out=out) == EXIT_OK
    schema = json.loads(out.getvalue())
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema)


def _readme_configs() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```toml\n(.*?)```", text, re.S)
    return [b for b in blocks if "[" in b and "[project" not in b]


SHIPPED = [
    ROOT / "src" / "cartrescue" / "data" / "cartrescue.toml",
    ROOT / "examples" / "cartrescue.toml",
]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_shipped_configs_validate(validator, path):
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    assert [e.message for e in validator.iter_errors(data)] == []


def test_the_readme_configs_validate(validator):
    blocks = _readme_configs()
    assert blocks
    for block in blocks:
        data = tomllib.loads(block)
        assert [e.message for e in validator.iter_errors(data)] == [], block


def test_real_plugin_tables_validate(validator):
    data = tomllib.loads(
        """
[connector]
type = "shopify"
shop = "s.myshopify.com"
token_env = "SHOPIFY_TOKEN"
[channels.sms]
type = "twilio"
account_sid = "AC00000000000000000000000000000000"
auth_token_env = "TWILIO_AUTH_TOKEN"
from_number = "+4790000000"
timeout = [5, 30]
[channels.email]
type = "smtp"
host = "smtp.example.com"
sender = "Shop <r@shop.example>"
username = "r@shop.example"
password_env = "SMTP_PASSWORD"
[web]
public_url = "https://shop.example/cartrescue"
unsubscribe_secret_env = "UNSUB"
[[policy.steps]]
delay = "1h"
channels = ["sms"]
discount = { percent = 10, valid_for = "2d" }
"""
    )
    assert [e.message for e in validator.iter_errors(data)] == []


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("[[policy.steps]]\ndelay = 60\n", "a bare number for a duration"),
        ('[run]\ninterval = "15 minutes"\n', "a duration without a valid unit"),
        ('[polcy]\nlookback = "1h"\n', "an unknown section"),
        ('[shop]\nnmae = "x"\n', "an unknown key"),
        ('[connector]\ntype = "shopify"\nshop = "s.myshopify.com"\n', "no token"),
        (
            '[connector]\ntype = "shopify"\nshop = "s"\ntoken_env = "T"\ntokn = 1\n',
            "a typo in a plugin's table",
        ),
        ('[channels.fax]\ntype = "console"\n', "an unknown channel kind"),
        ('[channels.sms]\ntype = "twilio"\naccount_sid = "nope"\n', "a wrong account sid"),
        ('[web]\npublic_url = "https://x"\nunsubscribe_secret = "inline"\n', "an inline secret"),
        ("[templates]\nmax_segments = 11\n", "out of range"),
        ("[connector]\nshop = 's'\n", "a plugin table without type"),
    ],
)
def test_a_wrong_config_is_rejected(validator, text, why):
    assert list(validator.iter_errors(tomllib.loads(text))), why


def test_plugins_without_declared_settings_are_open(validator):
    data = tomllib.loads('[connector]\ntype = "cartrescue.demo:DemoConnector"\nanything = 1\n')
    assert list(validator.iter_errors(data)) == []


def test_schema_writes_a_file(tmp_path):
    target = tmp_path / "cartrescue.schema.json"
    assert main(["schema", "--output", str(target)], out=io.StringIO()) == EXIT_OK
    assert json.loads(target.read_text(encoding="utf-8"))["title"] == "cartrescue.toml"
