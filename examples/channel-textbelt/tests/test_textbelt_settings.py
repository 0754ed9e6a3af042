"""The plugin's declared settings: checked by the config, part of `cartrescue schema`."""

import pytest
from cartrescue_textbelt import TextbeltSettings, TextbeltSMS

from cartrescue.config import load_config
from cartrescue.errors import ConfigError
from cartrescue.settings import config_schema

TABLE = '[channels.sms]\ntype = "textbelt"\nkey_env = "TEXTBELT_KEY"\n'


def test_the_config_builds_it_from_its_settings():
    config = load_config(None, text=TABLE + "rate_limit = 2\n", env={"TEXTBELT_KEY": "k" * 20})
    channel = config.channels()["sms"]
    assert isinstance(channel, TextbeltSMS)
    assert TextbeltSMS.settings_model is TextbeltSettings


@pytest.mark.parametrize(
    ("extra", "key", "fix"),
    [
        ("kye_env = 'X'\n", "channels.sms.kye_env", "did you mean key_env?"),
        ("rate_limt = 1\n", "channels.sms.rate_limt", "did you mean rate_limit?"),
        ("timeout = 'soon'\n", "channels.sms.timeout", ""),
    ],
)
def test_its_mistakes_are_named_with_a_fix(extra, key, fix):
    text = TABLE.replace('key_env = "TEXTBELT_KEY"\n', "") if "kye" in extra else TABLE
    with pytest.raises(ConfigError) as info:
        load_config(None, text=text + extra, env={"TEXTBELT_KEY": "k" * 20})
    assert [p.key for p in info.value.problems] == [key], str(info.value)
    assert info.value.fix.startswith(fix)


def test_the_schema_includes_it():
    channel = config_schema()["properties"]["channels"]["properties"]["sms"]
    [branch] = [b for b in channel["allOf"] if b["if"]["properties"]["type"]["const"] == "textbelt"]
    assert {"key_env", "rate_limit"} <= set(branch["then"]["properties"])
