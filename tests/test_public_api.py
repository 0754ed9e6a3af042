import cartrescue

EXPECTED = {
    "BadCheckout",
    "BadPayloadError",
    "CartRescueError",
    "Channel",
    "ChannelKind",
    "Checkout",
    "Clock",
    "Config",
    "ConfigError",
    "ConnectorAuthError",
    "ConnectorError",
    "Connector",
    "ConsoleChannel",
    "Content",
    "Customer",
    "Decision",
    "Discount",
    "DiscountCapable",
    "DiscountOffer",
    "FrozenClock",
    "History",
    "LineItem",
    "LinkShortener",
    "Message",
    "MessageContext",
    "MessageTooLong",
    "PermanentSendError",
    "PluginError",
    "Policy",
    "Problem",
    "Purchase",
    "PurchaseLookup",
    "Receipt",
    "Recovery",
    "RenderError",
    "Renderer",
    "RunReport",
    "SQLiteStore",
    "SelfCheck",
    "SendError",
    "SendOutcomeUnknown",
    "SendWindow",
    "SoldOutItems",
    "ShopInfo",
    "ShopTimezone",
    "Stats",
    "Step",
    "Store",
    "StoreError",
    "TemplateError",
    "TemplateRenderer",
    "TransientSendError",
    "WebhookCapable",
    "__version__",
    "decide",
    "load_config",
    "normalize_email",
    "normalize_phone",
    "utc_now",
}


def test_exported_names_are_exactly_the_intended_ones():
    assert set(cartrescue.__all__) == EXPECTED
    assert len(cartrescue.__all__) == len(EXPECTED)


def test_every_exported_name_exists():
    missing = [name for name in cartrescue.__all__ if not hasattr(cartrescue, name)]
    assert missing == []


def test_send_errors_and_config_errors_are_separate_families():
    assert issubclass(cartrescue.PermanentSendError, cartrescue.SendError)
    assert issubclass(cartrescue.TransientSendError, cartrescue.SendError)
    assert issubclass(cartrescue.SendOutcomeUnknown, cartrescue.SendError)
    assert not issubclass(cartrescue.ConfigError, cartrescue.SendError)
    assert issubclass(cartrescue.ConfigError, cartrescue.CartRescueError)


def test_the_version_lives_in_one_module_and_the_metadata_agrees():
    from importlib.metadata import version

    from cartrescue import _version, http

    assert cartrescue.__version__ == _version.__version__
    assert version("cartrescue") == _version.__version__
    assert f"cartrescue/{_version.__version__}" == http.USER_AGENT
