"""Plugins are found through real entry points: each test installs a small distribution
(a ``*.dist-info`` folder with ``entry_points.txt``, as pip writes it) on ``sys.path``."""

import textwrap

import pytest

from cartrescue.config import load_config
from cartrescue.errors import PluginError
from cartrescue.registry import CHANNELS, CONNECTORS, discover, load_plugin

CHANNEL_MODULE = """
from cartrescue.models import Receipt

class PigeonChannel:
    def __init__(self, kind="sms", *, loft):
        self.kind = kind
        self.loft = loft

    def send(self, message):
        return Receipt(provider="pigeon")

    def close(self):
        pass

NOT_A_CLASS = 42
"""


@pytest.fixture
def install(tmp_path, monkeypatch):
    """Install a distribution named ``dist`` with ``entry_points`` and ``modules``."""

    def install(dist, entry_points, modules):
        info = tmp_path / f"{dist.replace('-', '_')}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
        lines = []
        for group, entries in entry_points.items():
            lines.append(f"[{group}]")
            lines += [f"{name} = {value}" for name, value in entries.items()]
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
        for module, source in modules.items():
            (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))

    monkeypatch.syspath_prepend(tmp_path)
    return install


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("twilio", "TwilioSMS"),
        ("vonage", "VonageSMS"),
        ("linkmobility", "LinkMobilitySMS"),
        ("whatsapp", "WhatsAppCloud"),
        ("smtp", "SMTPEmail"),
        ("webhook", "WebhookChannel"),
        ("console", "ConsoleChannel"),
    ],
)
def test_built_in_channels_are_registered_entry_points(name, cls):
    assert load_plugin(CHANNELS, name).__name__ == cls
    (info,) = [p for p in discover(CHANNELS) if p.name == name]
    assert info.package == "cartrescue"
    assert info.error is None


def test_a_third_party_channel_is_found_and_built_from_config(install):
    install(
        "cartrescue-pigeon",
        {CHANNELS: {"pigeon": "pigeon_channel:PigeonChannel"}},
        {"pigeon_channel": CHANNEL_MODULE},
    )
    assert load_plugin(CHANNELS, "pigeon").__name__ == "PigeonChannel"
    config = load_config(
        None,
        text='[channels.sms]\ntype = "pigeon"\nloft = "roof"\n',
        env={},
    )
    channel = config.channels()["sms"]
    assert channel.loft == "roof"
    assert channel.kind == "sms"


def test_a_broken_plugin_is_reported_by_package_and_the_rest_goes_on(install):
    install(
        "cartrescue-broken",
        {CHANNELS: {"broken": "broken_channel:Broken"}},
        {"broken_channel": "import a_module_that_is_not_installed\n"},
    )
    found = {p.name: p for p in discover(CHANNELS)}
    assert found["broken"].package == "cartrescue-broken"
    assert "ModuleNotFoundError" in found["broken"].error
    assert found["twilio"].error is None
    with pytest.raises(PluginError) as info:
        load_plugin(CHANNELS, "broken", key="channels.sms.type")
    assert info.value.package == "cartrescue-broken"
    assert "cartrescue-broken" in str(info.value)
    assert info.value.key == "channels.sms.type"


def test_an_unknown_name_lists_what_is_installed():
    with pytest.raises(PluginError) as info:
        load_plugin(CHANNELS, "carrier-pigeon")
    assert "twilio" in str(info.value)
    assert "smtp" in str(info.value)


def test_an_entry_point_that_is_not_a_class_is_refused(install):
    install(
        "cartrescue-odd",
        {CONNECTORS: {"odd": "odd_module:NOT_A_CLASS"}},
        {"odd_module": CHANNEL_MODULE},
    )
    with pytest.raises(PluginError, match="not a class"):
        load_plugin(CONNECTORS, "odd")


def test_two_packages_with_the_same_name_are_named(install):
    install("cartrescue-pigeon", {CHANNELS: {"bird": "pigeon_a:PigeonChannel"}}, {})
    install("cartrescue-crow", {CHANNELS: {"bird": "pigeon_b:PigeonChannel"}}, {})
    with pytest.raises(PluginError) as info:
        load_plugin(CHANNELS, "bird")
    assert "cartrescue-crow" in str(info.value)
    assert "cartrescue-pigeon" in str(info.value)


def test_a_dotted_path_loads_a_class_without_an_entry_point(install):
    install("nothing", {}, {"pigeon_direct": CHANNEL_MODULE})
    assert load_plugin(CHANNELS, "pigeon_direct:PigeonChannel").__name__ == "PigeonChannel"


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("no_such_module_here:Thing", "ModuleNotFoundError"),
        ("pigeon_dotted:Missing", "AttributeError"),
        ("pigeon_dotted:NOT_A_CLASS", "not a class"),
        ("exploding_module:Thing", "RuntimeError"),
    ],
)
def test_a_bad_dotted_path_is_a_plugin_error(install, path, message):
    install(
        "nothing",
        {},
        {
            "pigeon_dotted": CHANNEL_MODULE,
            "exploding_module": "raise RuntimeError('boom at import')\n",
        },
    )
    with pytest.raises(PluginError, match=message):
        load_plugin(CHANNELS, path)
