"""Every template rendered with made-up checkouts: what ``cartrescue preview`` and ``doctor``
show, and the sample data the template tests use.

The samples are a typical checkout (a short name, one item) and a worst case (a 30-character
first name, a 60-character product title, three lines) in each language the package's
templates speak; a row says whether the message fits and, if not, why.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import MessageTooLong, RenderError, TemplateError
from .models import (
    CHANNEL_KINDS,
    ChannelKind,
    Checkout,
    Content,
    Customer,
    Discount,
    DiscountOffer,
    IncentiveKind,
    LineItem,
    ShopInfo,
)
from .render import WHATSAPP_BODY_LIMIT, MessageContext, TemplateRenderer, normalize_locale
from .sms import SINGLE, SmsLength, measure

if TYPE_CHECKING:  # config builds channels, whose doctor checks import preview
    from .config import Config
    from .policy import Policy

__all__ = [
    "OFFER_SAMPLES",
    "SAMPLE_RECOVERY_URL",
    "SAMPLE_SHORT_LINK",
    "PreviewRow",
    "PreviewSetup",
    "offer_samples",
    "offer_step",
    "preview",
    "preview_body",
    "preview_line",
    "preview_setup",
    "sample_checkout",
    "sample_segments",
    "schedule_steps",
    "write_html",
]

SAMPLE_RECOVERY_URL = (
    "https://nordlys-design.myshopify.com/70712377561/checkouts/ac/Z2NwLWV1cm9wZTE6MDFK"
    "/recover?key=8f2c1a9d7b3e&locale=nb-NO"
)
"""A Shopify recovery URL as messages carry it without a shortener: 120 characters."""
SAMPLE_SHORT_LINK = "https://s.no/Ab3dE9x"
"""A 20-character short link: the length the default SMS templates are written for."""


@dataclass(frozen=True, slots=True)
class _Sample:
    name: str
    title: str
    worst_name: str
    worst_titles: tuple[str, str, str]
    currency: str
    amount_off: Decimal
    """A realistic amount-off offer in ``currency``."""
    shipping_gap: Decimal
    """How far the sample cart is from free shipping, for ``free_shipping_remaining``."""


_SAMPLES: dict[str, _Sample] = {
    "en": _Sample(
        "Emily",
        "Linen napkins",
        "Mary-Elizabeth Alexandra Grace",
        (
            "Hand-knitted merino wool fisherman’s sweater, navy, size XXL",
            "Organic cotton bath towels",
            "Scented soy candle",
        ),
        "USD",
        Decimal(10),
        Decimal(25),
    ),
    "nb": _Sample(
        "Kari",
        "Ullteppe, fjordblå",
        "Anne-Marthe Ingeborg Kristiane",
        (
            "Håndstrikket lusekofte i ren norsk ull – marineblå, str. XXL",
            "Håndklær i økologisk bomull",
            "Duftlys i soyavoks",
        ),
        "NOK",
        Decimal(100),
        Decimal(150),
    ),
    "fi": _Sample(
        "Aino",
        "Koivuinen leikkuulauta",
        "Maria-Kaarina Johanna Marjatta",
        (
            "Käsinneulottu villapaita merinovillasta – tummansininen, XXL",
            "Luomupuuvillaiset kylpypyyhkeet",
            "Tuoksukynttilä soijavahasta",
        ),
        "EUR",
        Decimal(10),
        Decimal(20),
    ),
    "hu": _Sample(
        "László",
        "Kézzel korongozott váza",
        "Erzsébet Katalin Zsófia Ildikó",
        (
            "Kézzel kötött merinógyapjú halászpulóver – sötétkék, XXXL-es",
            "Biopamut fürdőlepedő",
            "Illatgyertya szójaviaszból",
        ),
        "HUF",
        Decimal(3000),
        Decimal(5000),
    ),
    "pt": _Sample(
        "João",
        "Jogo de canecas de cerâmica",
        "Maria Eduarda Conceição Santos",
        (
            "Suéter de lã merino tricotado à mão – azul-marinho, tam. XGG",
            "Toalhas de banho de algodão orgânico",
            "Vela aromática de cera de soja",
        ),
        "BRL",
        Decimal(30),
        Decimal(60),
    ),
    "ar": _Sample(
        "فاطمة",
        "وسادة زينة",
        "عبد الرحمن محمد عبد العزيز سعد",
        (
            "سترة صوف ميرينو محبوكة يدويًا بنمط الصيادين – كحلي، مقاس XXXL",
            "مناشف حمام من القطن العضوي",
            "شمعة معطرة من شمع الصويا",
        ),
        "AED",
        Decimal(50),
        Decimal(90),
    ),
}


def _sample(locale: str) -> _Sample:
    return _SAMPLES.get(normalize_locale(locale).split("-")[0], _SAMPLES["en"])


def sample_checkout(locale: str, *, worst: bool, now: datetime | None = None) -> Checkout:
    """A made-up checkout in ``locale``'s language for previews and tests.

    The worst case has a 30-character first name, a 60-character product title and three
    lines (four items); the typical one a short name and one item.
    """
    sample = _sample(locale)
    now = now or datetime.now(UTC)
    lines: tuple[LineItem, ...]
    if worst:
        lines = (
            LineItem(sample.worst_titles[0], 2, Decimal("4990.00")),
            LineItem(sample.worst_titles[1], 1, Decimal("1890.00")),
            LineItem(sample.worst_titles[2], 1, Decimal("475.67")),
        )
        name = sample.worst_name
    else:
        lines = (LineItem(sample.title, 1, Decimal("349.00")),)
        name = sample.name
    return Checkout(
        id="preview",
        abandoned_at=now - timedelta(hours=1),
        updated_at=now - timedelta(hours=1),
        recovery_url=SAMPLE_RECOVERY_URL,
        currency=sample.currency,
        total=sum((li.price * li.quantity for li in lines), Decimal(0)),
        line_items=lines,
        customer=Customer(first_name=name, locale=locale),
    )


@dataclass(frozen=True, slots=True)
class PreviewRow:
    """One template rendered with one set of sample data, for ``cartrescue preview``."""

    channel: ChannelKind
    step: int
    locale: str
    sample: str
    template: str | None
    content: Content | None = None
    length: SmsLength | None = None
    problem: str | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def fits(self) -> bool:
        return self.problem is None


StepOffer = DiscountOffer | Decimal | None
"""What a previewed step offers: an offer, a percentage (the shorthand of earlier releases),
or nothing."""

OFFER_SAMPLES: dict[str, IncentiveKind | None] = {
    "percent": IncentiveKind.PERCENT,
    "amount": IncentiveKind.AMOUNT,
    "free ship": IncentiveKind.FREE_SHIPPING,
    "remaining": None,
}
"""The samples :func:`offer_samples` renders, by the label preview shows: each offer kind,
and a cart below ``[shop] free_shipping_threshold`` with no offer (``remaining``)."""


def preview(
    renderer: TemplateRenderer,
    *,
    shop: ShopInfo,
    link: str,
    locales: Iterable[str],
    steps: Iterable[tuple[int, StepOffer]],
    channels: Iterable[ChannelKind] = CHANNEL_KINDS,
    now: datetime | None = None,
) -> list[PreviewRow]:
    """Render every (channel, step, locale) with typical and worst-case sample data.

    ``steps`` are (number, what the step offers); ``link`` stands for the link a message
    would carry. A row's ``problem`` says why it does not fit or does not render.
    """
    now = now or datetime.now(UTC)
    rows: list[PreviewRow] = []
    steps = list(steps)
    for channel in channels:
        for step, offer in steps:
            for locale in locales:
                for sample in ("typical", "worst case"):
                    worst = sample == "worst case"
                    context = _context(
                        channel,
                        locale,
                        shop,
                        link,
                        checkout=sample_checkout(locale, worst=worst, now=now),
                        discount=_discount(offer, locale, worst=worst, now=now),
                    )
                    rows.append(_preview_one(renderer, channel, step, sample, context))
    return rows


def offer_step(steps: Iterable[tuple[int, StepOffer]]) -> int | None:
    """The step :func:`offer_samples` renders: the last that offers something, else the last."""
    numbers = [(offer is not None, number) for number, offer in steps]
    return max(numbers)[1] if numbers else None


def offer_samples(
    renderer: TemplateRenderer,
    *,
    shop: ShopInfo,
    link: str,
    locales: Iterable[str],
    step: int,
    channels: Iterable[ChannelKind] = CHANNEL_KINDS,
    worst: bool = True,
    now: datetime | None = None,
) -> list[PreviewRow]:
    """Each offer kind, and the free-shipping threshold line, rendered at ``step`` for every
    channel and locale (rows labelled as in :data:`OFFER_SAMPLES`): what a step offering any
    kind would send. The amount is the locale's sample in its currency; for ``remaining``
    the shop's threshold is set just above the sample cart."""
    now = now or datetime.now(UTC)
    rows: list[PreviewRow] = []
    for channel in channels:
        for locale in locales:
            checkout = sample_checkout(locale, worst=worst, now=now)
            for label, kind in OFFER_SAMPLES.items():
                offer = _sample_offer(kind, locale)
                sample_shop = shop
                if kind is None:
                    sample_shop = replace(
                        shop,
                        free_shipping_threshold=checkout.total + _sample(locale).shipping_gap,
                        free_shipping_currency=None,
                    )
                context = _context(
                    channel,
                    locale,
                    sample_shop,
                    link,
                    checkout=checkout,
                    discount=_discount(offer, locale, worst=worst, now=now),
                )
                rows.append(_preview_one(renderer, channel, step, label, context))
    return rows


def _sample_offer(kind: IncentiveKind | None, locale: str) -> DiscountOffer | None:
    hours = 48 * 3600
    if kind is IncentiveKind.PERCENT:
        return DiscountOffer(Decimal(10), hours)
    if kind is IncentiveKind.AMOUNT:
        return DiscountOffer(None, hours, amount=_sample(locale).amount_off)
    if kind is IncentiveKind.FREE_SHIPPING:
        return DiscountOffer(None, hours, free_shipping=True)
    return None


def _discount(offer: StepOffer, locale: str, *, worst: bool, now: datetime) -> Discount | None:
    """The code a sample checkout gets for ``offer`` (a longer code in the worst case)."""
    if offer is None:
        return None
    code = "COMEBACK-7QX2" if worst else "BACK10"
    expires = now + timedelta(hours=48)
    if isinstance(offer, Decimal):
        return Discount(code=code, percent=offer, expires_at=expires)
    return Discount.of(offer, code, expires)


def _context(
    channel: ChannelKind,
    locale: str,
    shop: ShopInfo,
    link: str,
    *,
    checkout: Checkout,
    discount: Discount | None,
) -> MessageContext:
    return MessageContext(
        checkout=checkout,
        shop=shop,
        locale=locale,
        link=link,
        discount=discount,
        unsubscribe_url="https://shop.example/unsubscribe/xyz" if channel == "email" else None,
    )


def _preview_one(
    renderer: TemplateRenderer,
    channel: ChannelKind,
    step: int,
    sample: str,
    context: MessageContext,
) -> PreviewRow:
    locale = context.locale
    default = renderer.shop_locale or context.shop.locale
    try:
        template = renderer.resolve(channel, step, locale, default)
    except TemplateError as err:
        return PreviewRow(channel, step, locale, sample, None, problem=str(err))
    try:
        content, notes = renderer.render_with_notes(channel, step, context)
    except MessageTooLong as err:
        return PreviewRow(
            channel,
            step,
            locale,
            sample,
            template,
            length=SmsLength(err.encoding, err.units, 0),  # type: ignore[arg-type]
            problem=f"too long: {err.units} {err.encoding} units, "
            f"{err.limit} allowed even after shortening",
        )
    except RenderError as err:
        return PreviewRow(channel, step, locale, sample, template, problem=str(err))
    length = measure(content.text) if channel == "sms" else None
    return PreviewRow(
        channel, step, locale, sample, template, content=content, length=length, notes=notes
    )


@dataclass(frozen=True, slots=True)
class PreviewSetup:
    """What ``preview`` renders with: a configuration's renderer, shop, steps and a link as
    long as its real ones, or the package's alone; ``header`` says which."""

    renderer: TemplateRenderer
    shop: ShopInfo
    steps: list[tuple[int, StepOffer]]
    link: str
    header: str


def preview_setup(
    config: Config | None, *, shop: ShopInfo, link: str | None = None
) -> PreviewSetup:
    """Set up ``preview`` from ``config`` (its templates, shop, steps and ``[links]``), or,
    without one, from the package's templates with ``shop``; ``link`` overrides the link."""
    from .policy import DEFAULT_STEPS
    from .store.sqlite import SQLiteStore

    segments = ""
    if config is None:
        renderer = TemplateRenderer()
        steps: list[tuple[int, StepOffer]] = [(s.number, s.discount) for s in DEFAULT_STEPS]
        sample, why = SAMPLE_SHORT_LINK, "the length the default SMS templates are written for"
        source = "package templates, no configuration (no ./cartrescue.toml)"
    else:
        renderer = config.renderer()
        shop = config.shop
        steps = schedule_steps(config.policy)
        if config.policy.segments:
            segments = f"Segments: {sample_segments(config.policy, shop.locale)}\n"
        with SQLiteStore(":memory:") as scratch:
            links = config.links(scratch)
        if links is None:
            sample, why = SAMPLE_RECOVERY_URL, "no [links]: a raw Shopify recovery URL"
        else:
            sample, why = links.example(), "as long as your [links] short links"
        dirs = ", ".join(str(d) for d in renderer.template_dirs) or "none"
        source = f"{config.path}; your templates: {dirs}, then the package's"
    if link:
        sample, why = link, "given with --link"
    header = (
        f"cartrescue preview: {source}\n"
        f"Shop {shop.name!r}, locale {shop.locale}; at most {renderer.max_segments} SMS "
        f"segment(s); smart encoding {'on' if renderer.smart_encoding else 'off'}\n"
        f"Link: {sample} ({len(sample)} characters; {why})\n"
        f"{segments}"
    )
    return PreviewSetup(renderer, shop, steps, sample, header)


def sample_segments(policy: Policy, locale: str) -> str:
    """Which segment each sample cart falls in, for ``preview`` and ``doctor``:
    ``typical → default, worst case → high-value``."""
    found = []
    for label, worst in (("typical", False), ("worst case", True)):
        name, steps = policy.segment_for(sample_checkout(locale, worst=worst))
        found.append(f"{label} → {name}" + (" (skipped)" if steps is None else ""))
    return ", ".join(found)


def schedule_steps(policy: Policy) -> list[tuple[int, StepOffer]]:
    """Every (step, offer) any schedule of ``policy`` has, in order."""
    pairs = {(s.number, s.discount) for steps in policy.schedules() for s in steps}

    def order(pair: tuple[int, StepOffer]) -> tuple[int, bool, str]:
        number, offer = pair
        return number, offer is not None, repr(offer)

    return sorted(pairs, key=order)


def preview_line(row: PreviewRow) -> str:
    """The row of ``preview``'s table: channel, step, locale, data, encoding, length,
    segments, fit and template."""
    encoding: str
    if row.channel == "sms" and row.length is not None:
        limit = SINGLE[row.length.encoding]
        length = f"{row.length.units}/{limit}"
        encoding, segments = row.length.encoding, str(row.length.segments or "-")
    elif row.channel == "whatsapp" and row.content is not None:
        body = row.content.text.rsplit("\n[", 1)[0]
        length, encoding, segments = f"{len(body)}/{WHATSAPP_BODY_LIMIT}", "-", "-"
    else:
        length, encoding, segments = "-", "-", "-"
    fits = "yes" if row.fits else "NO"
    return (
        f"{row.channel:<9}{row.step:<5}{row.locale:<7}{row.sample:<11}{encoding:<9}"
        f"{length:>9}  {segments:<4}{fits:<5}{row.template or '-'}"
        + (f"  ({', '.join(row.notes)})" if row.notes else "")
    )


def preview_body(row: PreviewRow) -> list[str]:
    """The whole message of a row: an SMS's text; a WhatsApp template and its text; an
    email's subject, plain text and HTML. A row that did not render gives its problem."""
    if row.problem is not None:
        return [f"!! {row.problem}"]
    assert row.content is not None
    content = row.content
    if row.channel == "email":
        lines = [f"Subject: {content.subject}", "-- text --", *content.text.splitlines()]
        if content.html:
            lines += ["-- HTML --", *content.html.splitlines()]
        return lines
    lines = content.text.splitlines() or [""]
    if row.channel == "whatsapp":
        lines = [f"[{content.template} ({content.language})]", *lines]
        if content.header_image:
            lines.insert(1, f"[image header: {content.header_image}]")
    return lines


def write_html(rows: Iterable[PreviewRow], folder: str | Path) -> list[Path]:
    """Write each rendered email's HTML to ``folder`` (created if missing), one file per
    step, locale and sample, to open in a browser; return the files written."""
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for row in rows:
        if row.channel != "email" or row.content is None or not row.content.html:
            continue
        sample = re.sub(r"[^a-z0-9]+", "-", row.sample.lower())
        path = target / f"email-{row.step}-{row.locale}-{sample}.html"
        path.write_text(row.content.html, encoding="utf-8")
        written.append(path)
    return written
