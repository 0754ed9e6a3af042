"""The declared settings of the built-in plugins agree with their constructors."""

from __future__ import annotations

import inspect

import pytest

from cartrescue.channels.console import ConsoleChannel
from cartrescue.channels.email import SMTPEmail
from cartrescue.channels.linkmobility import LinkMobilitySMS
from cartrescue.channels.twilio import TwilioSMS
from cartrescue.channels.vonage import VonageSMS
from cartrescue.channels.webhook import WebhookChannel
from cartrescue.channels.whatsapp import WhatsAppCloud
from cartrescue.connectors.shopify import ShopifyConnector
from cartrescue.connectors.woocommerce import WooCommerceConnector
from cartrescue.settings import PluginSettings
from cartrescue.settings.schema import plugin_settings_model

BUILT_INS = [
    ConsoleChannel,
    SMTPEmail,
    LinkMobilitySMS,
    TwilioSMS,
    VonageSMS,
    WebhookChannel,
    WhatsAppCloud,
    ShopifyConnector,
    WooCommerceConnector,
]


@pytest.mark.parametrize("cls", BUILT_INS, ids=lambda c: c.__name__)
def test_every_setting_is_a_constructor_keyword(cls):
    model = plugin_settings_model(cls)
    assert model is not None and issubclass(model, PluginSettings)
    params = inspect.signature(cls).parameters
    assert set(model.model_fields) <= set(params), set(model.model_fields) - set(params)


@pytest.mark.parametrize("cls", BUILT_INS, ids=lambda c: c.__name__)
def test_declared_defaults_are_the_constructors(cls):
    """A default shown in the schema is the one the plugin uses (None: the plugin decides)."""
    model = plugin_settings_model(cls)
    assert model is not None
    params = inspect.signature(cls).parameters
    for name, info in model.model_fields.items():
        if info.is_required() or info.default is None:
            continue
        default = params[name].default
        assert default == info.default, f"{cls.__name__}.{name}: {default!r} != {info.default!r}"


@pytest.mark.parametrize("cls", BUILT_INS, ids=lambda c: c.__name__)
def test_required_settings_are_required_by_the_constructor(cls):
    model = plugin_settings_model(cls)
    assert model is not None
    params = inspect.signature(cls).parameters
    for name, param in params.items():
        if name in model.model_fields and param.default is inspect.Parameter.empty:
            assert model.model_fields[name].is_required(), name


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("max_overdue", "6h"),
        ("lookback", "24h"),
        ("frequency_cap", "20h"),
        ("discount_cooldown", "30d"),
        ("attribution_window", "7d"),
    ],
)
def test_the_policy_defaults_named_in_the_schema_are_the_policys(name, text):
    from cartrescue.policy import Policy
    from cartrescue.settings import PolicySettings, parse_duration

    assert f"(default {text})" in (PolicySettings.model_fields[name].description or "")
    assert getattr(Policy(), name) == parse_duration(text, key=name)
