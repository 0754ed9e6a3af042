"""The sections of ``cartrescue.toml`` and the policy, declared once.

``[connector]`` and ``[channels.KIND]`` are checked by the model their plugin declares
(:mod:`cartrescue.settings.providers` for the built-ins); here they are tables with a
``type``.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, Field, PlainValidator, WithJsonSchema, model_validator

from ..models import ChannelKind
from ..reasons import REASONS
from .base import Duration, SecretFromEnv, SettingsModel, _to_duration, invalid

__all__ = [
    "ArmSettings",
    "AttributionSettings",
    "ChannelAttributionSettings",
    "ConfigSettings",
    "ConversationsSettings",
    "CostsSettings",
    "DiscountSettings",
    "ExperimentSettings",
    "ExperimentTestSettings",
    "LinksSettings",
    "PolicySettings",
    "RfmGroupSettings",
    "RfmSettings",
    "RunSettings",
    "SegmentSettings",
    "ShopEntrySettings",
    "ShopSettings",
    "StepSettings",
    "StoreSettings",
    "TemplatesSettings",
    "WebSettingsModel",
]


def _http_url(value: str) -> str:
    if not re.match(r"^https?://[^/\s]+", value):
        raise invalid("expected an http(s) URL", 'write it as "https://myshop.example/…"')
    return value


HttpUrl = Annotated[str, AfterValidator(_http_url), Field(examples=["https://myshop.example"])]


def _time_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise invalid("expected an IANA time zone", 'write a zone such as "Europe/Oslo"') from None
    return value


def _hours(value: str) -> str:
    match = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", value)
    fix = 'write it as "09:00-20:00" (start before end, within one day)'
    if not match:
        raise invalid("expected sending hours such as '09:00-20:00'", fix)
    h1, m1, h2, m2 = map(int, match.groups())
    if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
        raise invalid("expected times of day from 00:00 to 23:59", fix)
    if (h1, m1) >= (h2, m2):
        raise invalid("the send window must start before it ends, within one day", fix)
    return value


Hours = Annotated[
    str,
    AfterValidator(_hours),
    Field(examples=["09:00-20:00"], pattern=r"^\d{1,2}:\d{2}-\d{1,2}:\d{2}$"),
]


class ShopSettings(SettingsModel):
    """``[shop]``: who the messages come from."""

    name: str = Field(default="Shop", description="shown in messages", examples=["My Shop"])
    locale: str = Field(
        default="en", description="messages fall back to this language", examples=["en"]
    )
    timezone: Annotated[str, AfterValidator(_time_zone)] | None = Field(
        default=None, description="quiet hours fall back to this zone", examples=["Europe/Oslo"]
    )
    home_url: HttpUrl | None = None
    free_shipping_threshold: Decimal | None = Field(
        default=None,
        gt=0,
        strict=False,
        examples=[500],
        description="carts of at least this much ship free; templates get free_shipping_remaining",
    )
    free_shipping_currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] | None = Field(
        default=None,
        examples=["NOK"],
        description="the threshold's currency; carts in other currencies are not compared "
        "(default: every cart is)",
    )


class StoreSettings(SettingsModel):
    """``[store]``: where cartrescue remembers what it sent."""

    path: str = Field(
        default="cartrescue.sqlite3",
        description="the SQLite file, relative to the config file",
        examples=["cartrescue.sqlite3"],
    )
    hash_key: SecretFromEnv | None = Field(
        default=None,
        description="a secret of 32+ characters keying the hashes a forgotten opt-out leaves "
        "behind (hash_key_env names its environment variable)",
    )
    hash_key_file: str | None = Field(
        default=None,
        description="or: a file holding that secret, kept outside the store",
        examples=["/etc/cartrescue/hash.key"],
    )

    url: SecretFromEnv | None = Field(
        default=None,
        description="a PostgreSQL URL (url_env names its environment variable); instead of "
        "path, for many workers and many shops (cartrescue[postgres])",
    )

    @model_validator(mode="after")
    def _path_or_url(self) -> StoreSettings:
        if self.url is not None and "path" in self.model_fields_set:
            raise invalid(
                "give path (SQLite) or url_env (PostgreSQL), not both",
                "remove one of them",
                key="path",
            )
        return self

    @model_validator(mode="after")
    def _one_hash_key(self) -> StoreSettings:
        if self.hash_key is not None and self.hash_key_file is not None:
            raise invalid(
                "give hash_key_env or hash_key_file, not both",
                "remove one of them",
                key="hash_key_file",
            )
        return self


class TemplatesSettings(SettingsModel):
    """``[templates]``: your templates first, then the built-in ones."""

    dirs: list[str] = Field(default_factory=list, examples=[["templates"]])
    max_segments: int | None = Field(default=None, ge=1, le=10, examples=[1])
    smart_encoding: bool | None = Field(default=None, examples=[True])


def _expires(value: object) -> object:
    if value == "never":
        return None
    return _to_duration(value)


class LinksSettings(SettingsModel):
    """``[links]``: short links answered by ``cartrescue serve-links``."""

    type: Literal["self-hosted"] = "self-hosted"
    base_url: HttpUrl = Field(examples=["https://myshop.example/r/"])
    code_length: int | None = Field(default=None, ge=7, le=32, examples=[8])
    expires_after: Annotated[
        Any,
        PlainValidator(_expires),
        WithJsonSchema(
            {
                "anyOf": [
                    {"type": "string", "pattern": r"^\s*(\d+(\.\d+)?\s*[dhms]\s*)+$"},
                    {"const": "never"},
                ],
                "examples": ["30d"],
            }
        ),
    ] = Field(default=None, examples=["30d"])
    utm: bool | None = None
    utm_source: Annotated[str, Field(min_length=1)] | None = None
    utm_campaign: Annotated[str, Field(min_length=1)] | None = None


class WebSettingsModel(SettingsModel):
    """``[web]``: what ``cartrescue serve`` answers (STOP replies, one-click unsubscribe).
    Secrets come from the environment only."""

    public_url: HttpUrl = Field(examples=["https://myshop.example/cartrescue"])
    host: str = Field(default="127.0.0.1", min_length=1, examples=["127.0.0.1"])
    port: int = Field(default=8080, ge=0, le=65535, examples=[8080])
    unsubscribe_secret: Annotated[SecretFromEnv, Field(min_length=16)] | None = None
    unsubscribe_previous_secrets: SecretFromEnv | None = Field(
        default=None,
        description="older unsubscribe secrets still accepted after a rotation, separated by "
        "spaces or commas",
    )
    unsubscribe_ttl_days: int = Field(
        default=365, ge=1, description="how long an unsubscribe link keeps working", examples=[365]
    )
    twilio_auth_token: SecretFromEnv | None = None
    whatsapp_app_secret: SecretFromEnv | None = None
    whatsapp_verify_token: SecretFromEnv | None = None
    vonage_signature_secret: SecretFromEnv | None = None
    vonage_signature_method: Literal["md5hash", "md5", "sha1", "sha256", "sha512"] = "md5hash"
    linkmobility_gate_username: str | None = Field(
        default=None,
        min_length=1,
        description="the Basic auth user name set on LINK Mobility's gate (with "
        "linkmobility_gate_password_env)",
    )
    linkmobility_gate_password: SecretFromEnv | None = None


class ConversationsSettings(SettingsModel):
    """``[conversations]``: what a reply that is not a keyword does. It is recorded on the
    checkout, holds the checkout's remaining reminders for ``pause`` ("never" resumes them
    never), and is forwarded to the shop: signed JSON to ``webhook_url`` (Standard Webhooks,
    with a ``whsec_`` secret) and/or an email to ``email_to`` through ``[channels.email]``.
    ``acknowledge`` answers the buyer once per pause (see
    :class:`~cartrescue.conversations.Conversations`)."""

    pause: Duration | Literal["never"] = Field(
        default=_to_duration("72h"), examples=["72h", "never"]
    )
    webhook_url: HttpUrl | None = None
    webhook_secret: SecretFromEnv | None = None
    email_to: Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")] | None = Field(
        default=None, examples=["support@myshop.example"]
    )
    acknowledge: bool = Field(
        default=False,
        description="answer the first reply of a pause once, in the buyer's language "
        '("Thanks, we\'ll get back to you shortly"), by SMS, or on WhatsApp inside the '
        "24-hour window the reply opened; through [channels.sms] / [channels.whatsapp]",
    )

    @model_validator(mode="after")
    def _webhook_has_a_secret(self) -> ConversationsSettings:
        if (self.webhook_url is None) != (self.webhook_secret is None):
            raise invalid(
                "webhook_url and webhook_secret_env go together",
                "set both (the secret is whsec_ followed by base64), or neither",
                key="webhook_url",
            )
        return self


class RunSettings(SettingsModel):
    """``[run]``: how often cron runs cartrescue (doctor warns when passes stop)."""

    interval: Duration = Field(default=_to_duration("15m"), examples=["15m"])


class DiscountSettings(SettingsModel):
    """A step's offer: ``{ percent = 10, valid_for = "48h" }``, ``{ amount = 50 }`` (off the
    cart, shop currency) or ``{ free_shipping = true }`` — one of the three."""

    percent: Decimal | None = Field(default=None, gt=0, le=100, strict=False, examples=[10])
    amount: Decimal | None = Field(
        default=None, gt=0, strict=False, examples=[50], description="off the cart (shop currency)"
    )
    free_shipping: bool = Field(default=False, description="a free-shipping code")
    valid_for: Duration = Field(default=_to_duration("48h"), examples=["48h"])
    min_subtotal: Decimal | None = Field(
        default=None,
        gt=0,
        strict=False,
        examples=[500],
        description="only carts of at least this much (shop currency) get the code",
    )
    first_time_only: bool = Field(
        default=False, description="only people the platform knows never ordered get the code"
    )

    @model_validator(mode="after")
    def _one_kind(self) -> DiscountSettings:
        if (self.percent is not None) + (self.amount is not None) + self.free_shipping != 1:
            raise invalid(
                "an offer gives one of percent, amount or free_shipping",
                "write { percent = 10 }, { amount = 50 } or { free_shipping = true }",
                key="percent",
            )
        return self


class StepSettings(SettingsModel):
    """One ``[[policy.steps]]``: sent ``delay`` after abandonment."""

    delay: Duration = Field(examples=["1h"])
    channels: list[ChannelKind] = Field(
        default=["email"], min_length=1, examples=[["sms", "email"]]
    )
    discount: DiscountSettings | None = None


class PolicySettings(SettingsModel):
    """``[policy]``: who gets which reminder, and when. A key left out keeps the default of
    :class:`~cartrescue.policy.Policy` (named in each description)."""

    steps: list[StepSettings] | None = Field(
        default=None, min_length=1, description="default: 1h, 24h, 48h (with 10 % off)"
    )
    max_overdue: Duration | None = Field(
        default=None,
        examples=["6h"],
        description="a step missed by more than this is skipped, never sent late (default 6h)",
    )
    lookback: Duration | None = Field(
        default=None,
        examples=["24h"],
        description="when first switched on, older carts are left alone (default 24h)",
    )
    quiet_hours: Hours | None = Field(
        default=None, description="sending hours, recipient-local (default 09:00-20:00)"
    )
    send_window: Hours | None = Field(default=None, description="the same as quiet_hours")
    frequency_cap: Duration | None = Field(
        default=None,
        examples=["20h"],
        description="at most one message per person in this span (default 20h)",
    )
    max_sms_per_checkout: int | None = Field(
        default=None, ge=0, examples=[1], description="default 1"
    )
    discount_cooldown: Duration | None = Field(
        default=None,
        examples=["30d"],
        description="no new code for someone given one this recently (default 30d)",
    )
    attribution_window: Duration | None = Field(
        default=None,
        examples=["7d"],
        description="a purchase this soon after a message counts as recovered (default 7d)",
    )
    whatsapp_consent_from_sms: bool | None = Field(
        default=None, description="treat SMS consent as WhatsApp consent (default false)"
    )
    skip_sold_out: bool | None = Field(
        default=None,
        description="no reminder for a cart whose every item the platform reports out of "
        "stock (default true)",
    )
    sold_out_items: Literal["drop", "skip_cart"] | None = Field(
        default=None,
        description='items the platform reports sold out: "drop" leaves them out of the '
        'message (its total counts only the rest), "skip_cart" sends no reminder for the '
        'cart (default "drop")',
    )


def _reason(value: str) -> str:
    if value not in REASONS:
        raise invalid(
            f"unknown reason {value!r}",
            f"use one of {', '.join(REASONS)}",
        )
    return value


Reason = Annotated[
    str,
    AfterValidator(_reason),
    WithJsonSchema({"type": "string", "enum": list(REASONS)}),
]


class SegmentSettings(SettingsModel):
    """One ``[[segments]]``: the carts that meet every condition given get ``steps`` (the
    ``[policy]`` steps when left out), or no reminder at all with ``skip = true``. The first
    segment a cart matches wins; a condition on data the platform did not give never
    matches."""

    name: str = Field(min_length=1, examples=["high-value"])
    min_value: Decimal | None = Field(
        default=None, ge=0, strict=False, description="cart total at least this (shop currency)"
    )
    max_value: Decimal | None = Field(
        default=None, gt=0, strict=False, description="cart total below this (shop currency)"
    )
    min_items: int | None = Field(default=None, ge=0, description="at least this many items")
    max_items: int | None = Field(default=None, ge=1, description="fewer than this many items")
    customer: Literal["new", "returning"] | None = Field(
        default=None, description="whether the customer bought before"
    )
    countries: list[Annotated[str, Field(pattern=r"^[A-Za-z]{2}$")]] | None = Field(
        default=None, min_length=1, examples=[["NO", "SE"]], description="ISO 3166-1 alpha-2"
    )
    all_in_stock: bool | None = Field(
        default=None, description="true: every item in stock; false: some item out of stock"
    )
    product_tags: list[Annotated[str, Field(min_length=1, pattern=r"\S")]] | None = Field(
        default=None,
        min_length=1,
        examples=[["wool", "gift"]],
        description="an item's product has one of these tags (any case); needs [connector] "
        "product_details = true",
    )
    collections: list[Annotated[str, Field(min_length=1, pattern=r"\S")]] | None = Field(
        default=None,
        min_length=1,
        examples=[["winter-sale"]],
        description="an item's product is in one of these collections, by handle or title "
        "(WooCommerce: product categories, by slug or name); needs [connector] "
        "product_details = true",
    )
    rfm: list[Annotated[str, Field(min_length=1)]] | None = Field(
        default=None,
        min_length=1,
        examples=[["champions", "loyal"]],
        description="the customer is in one of these RFM groups (names from [rfm]); needs "
        "the customer's order history, which is read from the platform",
    )
    reasons: list[Reason] | None = Field(
        default=None,
        min_length=1,
        examples=[["shipping_cost"]],
        description="the buyer said they left for one of these (an SMS digit or a WhatsApp "
        "list reply); carts without a stated reason never match",
    )
    skip: bool = Field(default=False, description="send these carts no reminder")
    steps: list[StepSettings] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> SegmentSettings:
        if self.skip and self.steps is not None:
            raise invalid("give steps or skip = true, not both", "remove one", key="skip")
        for low, high in (("min_value", "max_value"), ("min_items", "max_items")):
            lo, hi = getattr(self, low), getattr(self, high)
            if lo is not None and hi is not None and lo >= hi:
                raise invalid(f"{low} must be below {high}", f"lower {low}", key=low)
        return self


def _require_unique(names: list[str], what: str, table: str, key: str) -> None:
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise invalid(
            f"{what} names must be unique; found {', '.join(twice)} more than once",
            f"give each {table} its own name",
            key=key,
        )


Score = Annotated[int, Field(ge=0, le=3)]


class RfmGroupSettings(SettingsModel):
    """One ``[[rfm.groups]]``: a named group and the scores (0 never bought, 1 to 3) it
    takes on each axis; an axis left out takes any score. The first group that fits wins."""

    name: str = Field(min_length=1, examples=["champions"])
    recency: list[Score] | None = Field(default=None, min_length=1, examples=[[3]])
    frequency: list[Score] | None = Field(default=None, min_length=1, examples=[[2, 3]])
    monetary: list[Score] | None = Field(default=None, min_length=1, examples=[[2, 3]])


def _two_ascending(value: list[Any]) -> list[Any]:
    if len(value) != 2 or value[0] > value[1]:
        raise invalid("expected two cut-offs, the first not above the second", "write [low, high]")
    return value


class RfmSettings(SettingsModel):
    """``[rfm]``: how customers are scored from their order history and grouped, for the
    segments' ``rfm`` condition. Recency scores 3 for a last order at most
    ``recency_days[0]`` days ago, 2 at most ``recency_days[1]``, else 1; frequency 3 from
    ``orders[1]`` paid orders, 2 from ``orders[0]``, else 1; monetary 3 from
    ``amount_spent[1]`` (shop currency), 2 from ``amount_spent[0]``, else 1; never bought is
    0 on all three. ``method = "quantiles"`` uses the terciles over the buyers the pass has
    seen instead, once there are ``min_customers`` of them."""

    method: Literal["thresholds", "quantiles"] = "thresholds"
    recency_days: Annotated[list[Annotated[float, Field(ge=0)]], AfterValidator(_two_ascending)] = (
        Field(default_factory=lambda: [30.0, 90.0], examples=[[30, 90]])
    )
    orders: Annotated[list[Annotated[int, Field(ge=1)]], AfterValidator(_two_ascending)] = Field(
        default_factory=lambda: [2, 5], examples=[[2, 5]]
    )
    amount_spent: Annotated[
        list[Annotated[Decimal, Field(ge=0, strict=False)]], AfterValidator(_two_ascending)
    ] = Field(default_factory=lambda: [Decimal(100), Decimal(500)], examples=[[100, 500]])
    min_customers: int = Field(default=20, ge=3)
    groups: list[RfmGroupSettings] | None = Field(
        default=None,
        min_length=1,
        description="named groups, tried in order (default: champions, loyal, new, at risk, "
        "hibernating, others)",
    )

    @model_validator(mode="after")
    def _unique_groups(self) -> RfmSettings:
        _require_unique(
            [g.name for g in self.groups or ()], "RFM group", "[[rfm.groups]]", "groups"
        )
        return self

    def group_names(self) -> list[str]:
        """The names segments may use."""
        if self.groups is not None:
            return [g.name for g in self.groups]
        from ..rfm import DEFAULT_GROUPS

        return [g.name for g in DEFAULT_GROUPS]


class ArmSettings(SettingsModel):
    """One arm of ``[[experiment.tests]]``: what differs from the policy's step."""

    name: str = Field(min_length=1, examples=["control"])
    weight: float = Field(default=1.0, gt=0, examples=[1])
    template: str | None = Field(
        default=None, min_length=1, description="a template variant name, recorded"
    )
    delay: Duration | None = Field(
        default=None, examples=["3h"], description="send the step this long after abandonment"
    )
    channel: ChannelKind | None = None
    discount: DiscountSettings | Literal["none"] | None = Field(
        default=None, description='an offer, or "none" to send the step without one'
    )


class ExperimentTestSettings(SettingsModel):
    """One ``[[experiment.tests]]``: an A/B test with a name, a start and arms."""

    name: str = Field(min_length=1, examples=["second-reminder-offer"])
    start: datetime = Field(strict=False, examples=["2026-01-01T00:00:00Z"])
    end: datetime | None = Field(default=None, strict=False)
    step: int | None = Field(default=None, ge=1, description="the step it varies (all if unset)")
    arms: list[ArmSettings] = Field(min_length=2)
    control: str | None = Field(default=None, description="the control arm (default: the first)")
    allocation: Literal["fixed", "adaptive"] = "fixed"
    floor: float = Field(
        default=0.1, ge=0, le=0.5, description="adaptive: the least share each arm keeps"
    )

    @model_validator(mode="after")
    def _aware(self) -> ExperimentTestSettings:
        for name in ("start", "end"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                fix = 'write it as "2026-01-01T00:00:00Z"'
                raise invalid("expected a time with its offset", fix, key=name)
        return self


class ExperimentSettings(SettingsModel):
    """``[experiment]``: a persistent holdout and A/B tests (off unless configured)."""

    holdout: float = Field(
        default=0.0, ge=0, lt=1, examples=[0.1], description="the share of people never messaged"
    )
    tests: list[ExperimentTestSettings] = Field(default_factory=list)
    min_detectable_lift: float = Field(
        default=0.03,
        gt=0,
        lt=1,
        description="the report says 'not enough data yet' until each group is large enough "
        "to detect this absolute lift in conversion rate (0.03 = 3 points)",
    )
    min_sample: int = Field(default=100, ge=1, description="and never below this per group")


class CostsSettings(SettingsModel):
    """``[costs]``: what each message costs, for ROI in the report."""

    currency: str | None = Field(default=None, examples=["EUR"])
    sms_segment: Decimal = Field(default=Decimal(0), ge=0, strict=False, examples=[0.07])
    whatsapp_conversation: Decimal = Field(default=Decimal(0), ge=0, strict=False)
    email: Decimal = Field(default=Decimal(0), ge=0, strict=False)


class ChannelAttributionSettings(SettingsModel):
    """``[attribution.channels.KIND]``: this channel's windows."""

    click_window: Duration | None = Field(default=None, examples=["5d"])
    send_window: Duration | None = Field(default=None, examples=["24h"])


class AttributionSettings(SettingsModel):
    """``[attribution]``: a purchase counts as attributed to a message when it comes within
    ``click_window`` of a click on its link, or ``send_window`` of the send."""

    click_window: Duration = Field(default=_to_duration("5d"), examples=["5d"])
    send_window: Duration = Field(default=_to_duration("24h"), examples=["24h"])
    channels: dict[ChannelKind, ChannelAttributionSettings] = Field(default_factory=dict)


class ShopEntrySettings(SettingsModel):
    """One ``[[shops]]`` entry: a shop of its own in a deployment of many, sharing the
    ``[store]`` (its name is part of every key). Tables it leaves out are taken from the
    top of the file; ``policy`` and ``templates`` keys are laid over the top-level ones."""

    name: str = Field(
        min_length=1,
        max_length=63,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="the shop's key (run --shop NAME); letters, digits, '.', '_', '-'",
        examples=["nordlys"],
    )
    display_name: str | None = Field(
        default=None, description="shown in messages (default: name)", examples=["Nordlys"]
    )
    locale: str | None = Field(default=None, examples=["nb"])
    timezone: Annotated[str, AfterValidator(_time_zone)] | None = Field(
        default=None, description="quiet hours fall back to this zone", examples=["Europe/Oslo"]
    )
    home_url: HttpUrl | None = None
    connector: dict[str, Any] | None = None
    channels: dict[ChannelKind, dict[str, Any]] | None = None
    templates: dict[str, Any] | None = None
    policy: dict[str, Any] | None = None


class ConfigSettings(SettingsModel):
    """The whole ``cartrescue.toml``. ``connector`` and each of ``channels`` are checked by
    the settings their plugin declares."""

    shop: ShopSettings = ShopSettings()
    connector: dict[str, Any] | None = None
    channels: dict[ChannelKind, dict[str, Any]] | None = None
    store: StoreSettings = StoreSettings()
    policy: PolicySettings = PolicySettings()
    templates: TemplatesSettings = TemplatesSettings()
    links: LinksSettings | None = None
    web: WebSettingsModel | None = None
    conversations: ConversationsSettings = ConversationsSettings()
    run: RunSettings = RunSettings()
    experiment: ExperimentSettings = ExperimentSettings()
    costs: CostsSettings = CostsSettings()
    attribution: AttributionSettings = AttributionSettings()
    shops: list[ShopEntrySettings] = Field(
        default_factory=list, description="many shops in one deployment ([[shops]])"
    )

    @model_validator(mode="after")
    def _unique_shops(self) -> ConfigSettings:
        _require_unique([shop.name for shop in self.shops], "shop", "[[shops]] entry", "shops")
        return self

    segments: list[SegmentSettings] = Field(default_factory=list)
    rfm: RfmSettings = RfmSettings()

    @model_validator(mode="after")
    def _unique_segments(self) -> ConfigSettings:
        names = [s.name for s in self.segments]
        for name in names:
            if name == "default" or names.count(name) > 1:
                fix = "give each [[segments]] its own name (not 'default')"
                raise invalid(f"segment name {name!r} is taken", fix, key="segments")
        groups = self.rfm.group_names()
        for segment in self.segments:
            unknown = [g for g in segment.rfm or () if g not in groups]
            if unknown:
                raise invalid(
                    f"segment {segment.name!r}: no RFM group named {', '.join(map(repr, unknown))}",
                    f"use one of {', '.join(map(repr, groups))}, or add it under [[rfm.groups]]",
                    key="segments",
                )
        return self
