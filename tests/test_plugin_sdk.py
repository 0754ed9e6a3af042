"""cartrescue.plugin is the integrator's one import: its names are exactly these."""

import ast
from pathlib import Path

import cartrescue.plugin
from cartrescue import errors

EXPECTED = {
    "Duration",
    "HttpSettings",
    "PluginSettings",
    "Secret",
    "SecretFromEnv",
    "invalid",
    # protocols and optional capabilities
    "Connector",
    "DiscountCapable",
    "PurchaseLookup",
    "BulkPurchaseLookup",
    "CustomerHistoryLookup",
    "HistoryCheck",
    "PurchaseCheck",
    "find_purchases",
    "ShopTimezone",
    "WebhookCapable",
    "Channel",
    "BatchChannel",
    # HTTP base classes and their options
    "HttpChannel",
    "HttpOptions",
    "HttpRequest",
    "HttpClient",
    "SendResult",
    "is_gsm7",
    # errors
    "CartRescueError",
    "ConfigError",
    "BadPayloadError",
    "ConnectorError",
    "ConnectorAuthError",
    "SendError",
    "PermanentSendError",
    "TransientSendError",
    "RetryableSendError",
    "SendOutcomeUnknown",
    # models
    "BadCheckout",
    "ChannelKind",
    "Checkout",
    "Content",
    "Customer",
    "CustomerHistory",
    "Discount",
    "DiscountOffer",
    "LineItem",
    "Message",
    "Purchase",
    "Receipt",
    "ShopInfo",
    "normalize_email",
    "normalize_phone",
    "parse_money",
    "parse_time",
    # doctor's self-check, and time
    "Problem",
    "SelfCheck",
    "Clock",
    "utc_now",
}

ROOT = Path(__file__).resolve().parents[1]


def test_exported_names_are_exactly_the_intended_ones():
    assert set(cartrescue.plugin.__all__) == EXPECTED
    assert len(cartrescue.plugin.__all__) == len(EXPECTED)


def test_every_exported_name_exists():
    assert [n for n in cartrescue.plugin.__all__ if not hasattr(cartrescue.plugin, n)] == []


def test_retryable_send_error_is_a_transient_send_error_in_errors():
    assert cartrescue.plugin.RetryableSendError is errors.RetryableSendError
    assert issubclass(errors.RetryableSendError, errors.TransientSendError)
    assert errors.RetryableSendError("slow down", wait=2.0).wait == 2.0


def _cartrescue_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.startswith("cartrescue")
        ):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("cartrescue")}
    return found


def test_the_example_plugins_import_only_the_sdk_module():
    sources = sorted((ROOT / "examples").glob("*/src/**/*.py"))
    assert len(sources) >= 2
    for path in sources:
        modules = {m for m in _cartrescue_imports(path) if not m.startswith("cartrescue_")}
        assert modules <= {"cartrescue.plugin"}, path
