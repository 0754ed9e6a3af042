"""The settings of the built-in connectors and channels, one model each.

Each plugin class points at its model (``settings_model``); the constructors keep their own
defaults and checks for Python callers, and the config checks the file against these models
first, so every mistake in a table is reported at once.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from ..models import ChannelKind
from .base import PluginSettings, Seconds, Secret, Timeout, invalid
from .sections import HttpUrl

__all__ = [
    "ConsoleSettings",
    "HttpSettings",
    "LinkMobilitySettings",
    "SMTPSettings",
    "ShopifySettings",
    "TwilioSettings",
    "VonageSettings",
    "WebhookSettings",
    "WhatsAppSettings",
    "WooCommerceSettings",
]

Text = Annotated[str, Field(min_length=1)]
TemplateName = Annotated[str, Field(pattern=r"^[a-z0-9_]{1,512}$")]
"""A WhatsApp template name: lower-case letters, digits and underscores."""


def _names(value: object) -> object:
    return [value] if isinstance(value, str) else value


Names = Annotated[list[Text], BeforeValidator(_names), Field(min_length=1)]
"""One name or a list of names."""


def _https(value: str) -> str:
    if not value.startswith("https://"):
        raise invalid("expected an https:// URL", 'write it as "https://…"')
    return value


class HttpSettings(PluginSettings):
    """The settings every HTTP channel shares (see ``HttpOptions``)."""

    base_url: HttpUrl | None = Field(
        default=None, description="another endpoint (proxy, region, tests)"
    )
    timeout: Timeout | None = Field(default=None, examples=[30])
    rate_limit: float | None = Field(
        default=None, ge=0, description="messages per second, 0: no limit"
    )
    concurrency: int | None = Field(default=None, ge=1, examples=[4])
    attempts: int | None = Field(default=None, ge=1, examples=[4])
    max_wait: Seconds | None = Field(
        default=None, description="longest wait between tries, seconds"
    )


class ConsoleSettings(PluginSettings):
    """``type = "console"``: prints messages instead of sending them."""

    mask: bool = Field(default=True, description="mask phone numbers and emails in the output")


class TwilioSettings(HttpSettings):
    """``type = "twilio"``: SMS through Twilio's Messages API."""

    account_sid: str = Field(
        pattern=r"^AC[0-9a-fA-F]{32}$",
        description="'AC' followed by 32 hex digits",
        examples=["AC0123456789abcdef0123456789abcdef"],
    )
    auth_token: Secret
    from_number: Text | None = Field(default=None, examples=["+4790000000"])
    messaging_service_sid: str | None = Field(
        default=None, pattern=r"^MG[0-9a-fA-F]{32}$", description="'MG' followed by 32 hex digits"
    )
    status_callback: Annotated[str, AfterValidator(_https)] | None = None

    @model_validator(mode="after")
    def _sender(self) -> Self:
        if not self.from_number and not self.messaging_service_sid:
            raise invalid(
                "missing the sender",
                'add from_number = "+4790000000" or messaging_service_sid = "MG…"',
                key="from_number",
            )
        return self


class VonageSettings(HttpSettings):
    """``type = "vonage"``: SMS through Vonage's SMS API."""

    api_key: Text = Field(examples=["abcd1234"])
    api_secret: Secret
    from_number: Text = Field(examples=["MyShop"])
    status_callback: HttpUrl | None = None


class LinkMobilitySettings(HttpSettings):
    """``type = "linkmobility"``: SMS through LINK Mobility's Common Platform."""

    username: Text
    password: Secret
    platform_id: Text
    platform_partner_id: Text
    from_number: Text = Field(examples=["MyShop"])
    source_ton: Literal["ALPHANUMERIC", "SHORTNUMBER", "MSISDN"] | None = None
    delivery_report_gate: Text | None = None


class WhatsAppSettings(HttpSettings):
    """``type = "whatsapp"``: approved templates through the WhatsApp Cloud API."""

    phone_number_id: Text = Field(examples=["106540352242922"])
    access_token: Secret
    api_version: str = Field(
        default="v23.0",
        pattern=r"^v\d+\.\d+$",
        description="a Graph API version such as 'v23.0'",
        examples=["v23.0"],
    )
    default_language: Text = Field(default="en", examples=["en"])
    template_category: Literal["marketing", "utility"] = "marketing"
    template_names: dict[TemplateName, TemplateName] | None = Field(
        default=None,
        description="the names your templates were approved under, by the name the rendered "
        "template gives (e.g. one per offer kind)",
        examples=[{"cart_reminder_free_shipping": "fri_frakt_2026"}],
    )


class WebhookSettings(HttpSettings):
    """``type = "webhook"``: a signed JSON POST to your own endpoint."""

    url: HttpUrl = Field(examples=["https://myshop.example/hooks/cartrescue"])
    secret: Annotated[Secret, Field(min_length=16)]
    idempotent: bool = False


class SMTPSettings(PluginSettings):
    """``type = "smtp"``: email through an SMTP server."""

    host: Text = Field(examples=["smtp.example.com"])
    sender: Text = Field(examples=["My Shop <reminders@myshop.example>"])
    port: int | None = Field(default=None, ge=1, le=65535, examples=[587])
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: Text | None = Field(default=None, examples=["reminders@myshop.example"])
    password: Secret | None = None
    reply_to: Text | None = None
    timeout: Seconds = Field(default=30.0, examples=[30])
    local_hostname: Text | None = None

    @model_validator(mode="after")
    def _login(self) -> Self:
        if (self.username is None) != (self.password is None):
            missing = "password" if self.password is None else "username"
            fix = 'add password_env = "SMTP_PASSWORD"' if missing == "password" else "add username"
            raise invalid("give both username and password, or neither", fix, key=missing)
        return self


class ShopifySettings(PluginSettings):
    """``type = "shopify"``: abandoned checkouts from the Shopify Admin API."""

    shop: Text = Field(examples=["my-shop.myshopify.com"])
    token: Secret
    api_version: str | None = Field(
        default=None,
        pattern=r"^(\d{4}-\d{2}|unstable)$",
        description="a Shopify API release such as '2026-10'",
        examples=["2026-10"],
    )
    api: Literal["graphql", "rest"] = "graphql"
    base_url: HttpUrl | None = None
    timeout: Seconds = Field(default=30.0, examples=[30])
    webhook_secret: Secret | None = None
    line_items: int = Field(default=10, ge=1, le=250)
    max_page_size: int = Field(default=250, ge=1)
    rest_leak_rate: float = Field(default=2.0, gt=0)
    discount_prefix: str = Field(
        default="BACK",
        pattern=r"^[A-Z0-9]{0,12}$",
        description="up to 12 capital letters or digits",
        examples=["BACK"],
    )
    check_stock: bool = Field(
        default=False,
        description="GraphQL: also read whether each item can still be bought (one more "
        "query cost point a line), so [policy] skip_sold_out can act",
    )
    images: bool = Field(
        default=True,
        description="GraphQL: read each item's image for emails and WhatsApp image headers "
        "(one more query cost point a line)",
    )
    product_details: bool = Field(
        default=False,
        description="GraphQL: read each item's product tags and collections for [[segments]] "
        "product_tags / collections (needs the read_products scope; 3 + "
        "collections_per_product cost points a line)",
    )
    collections_per_product: int = Field(
        default=5,
        ge=1,
        le=250,
        description="with product_details: how many of a product's collections are read",
    )


class WooCommerceSettings(PluginSettings):
    """``type = "woocommerce"``: pending and failed orders from the WooCommerce REST API."""

    url: HttpUrl = Field(examples=["https://myshop.example"])
    consumer_key: Secret
    consumer_secret: Secret
    statuses: Names | None = Field(default=None, examples=[["pending", "failed"]])
    created_via: Names | None = Field(default=None, examples=[["checkout", "store-api"]])
    paid_statuses: Names | None = Field(default=None, examples=[["processing", "completed"]])
    consent_meta: dict[str, str] | None = Field(
        default=None, examples=[{"sms": "_sms_marketing_consent"}]
    )
    consent_meta_value: Any = None
    consent: list[ChannelKind] | None = None
    query_string_auth: bool = False
    webhook_secret: Secret | None = None
    coupon_prefix: str = Field(
        default="BACK",
        pattern=r"^[A-Za-z0-9-]{0,12}$",
        description="up to 12 letters, digits or dashes",
        examples=["BACK"],
    )
    per_page: int = Field(default=100, ge=1, le=100)
    timeout: Timeout | None = Field(default=None, examples=[30])
    attempts: int = Field(default=5, ge=1, le=20)
    verify_ssl: bool = True
    base_url: HttpUrl | None = None
    check_stock: bool = Field(
        default=False,
        description="also read each item's stock_status (one products request per page of "
        "new products, cached for the pass), so [policy] skip_sold_out can act",
    )
    product_details: bool = Field(
        default=False,
        description="also read each item's product tags and categories for [[segments]] "
        "product_tags / collections (categories stand in for collections; asked together "
        "with stock, cached for the pass)",
    )
