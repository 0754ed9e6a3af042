"""Messages from Jinja2 templates, rendered in the sandbox.

Templates live in ``{channel}/{step}.{locale}.j2``: the user's folders first, then the package
defaults. Customer data is passed as data, never as template source.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from .errors import TemplateError
from .models import ChannelKind, Checkout, Content, Discount, ShopInfo

__all__ = ["MessageContext", "Renderer", "TemplateRenderer"]


@dataclass(frozen=True, slots=True)
class MessageContext:
    """Everything a template may show."""

    checkout: Checkout
    shop: ShopInfo
    locale: str
    link: str
    discount: Discount | None = None
    unsubscribe_url: str | None = None


@runtime_checkable
class Renderer(Protocol):
    """Turns a step's template for a channel into :class:`~cartrescue.models.Content`.

    Raises :class:`~cartrescue.errors.RenderError` (``TemplateError``, ``MessageTooLong``)
    when it cannot; the engine records that and does not send.
    """

    def render(self, channel: ChannelKind, step: int, context: MessageContext) -> Content: ...


def _locale_chain(locale: str, default: str) -> list[str]:
    chain: list[str] = []
    for candidate in (locale, locale.split("-")[0], default, default.split("-")[0], "en"):
        if candidate and candidate not in chain:
            chain.append(candidate)
    return chain


class TemplateRenderer:
    """Renders ``{channel}/{step}.{locale}.j2`` from ``template_dirs`` then the defaults.

    A template's blocks give the parts: an email template defines ``subject``, ``text`` and
    ``html`` blocks; an SMS template renders its text; a WhatsApp template sets ``template``,
    ``language`` and ``parameters``.
    """

    def __init__(self, template_dirs: Sequence[str | Path] = ()) -> None:
        loaders: list[jinja2.BaseLoader] = [
            jinja2.FileSystemLoader([str(d) for d in template_dirs])
        ]
        loaders.append(jinja2.PackageLoader("cartrescue", "templates"))
        self._env = SandboxedEnvironment(
            loader=jinja2.ChoiceLoader(loaders),
            undefined=jinja2.StrictUndefined,
            autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default=False),
            keep_trailing_newline=False,
            trim_blocks=True,
            lstrip_blocks=True,
        )

    def _template(
        self, channel: ChannelKind, step: int, locale: str, default: str
    ) -> jinja2.Template:
        names = [f"{channel}/{step}.{loc}.j2" for loc in _locale_chain(locale, default)]
        try:
            return self._env.select_template(names)
        except jinja2.TemplatesNotFound:
            raise TemplateError(f"no template (tried {', '.join(names)})") from None
        except jinja2.TemplateSyntaxError as err:
            raise TemplateError(f"line {err.lineno}: {err.message}", template=err.name) from err

    def render(self, channel: ChannelKind, step: int, context: MessageContext) -> Content:
        template = self._template(channel, step, context.locale, context.shop.locale)
        variables = _variables(context)
        try:
            blocks = {
                name: "".join(block(template.new_context(variables))).strip()
                for name, block in template.blocks.items()
            }
            body = template.render(variables).strip()
        except jinja2.TemplateError as err:
            raise TemplateError(str(err), template=template.name) from err
        if channel == "email":
            return Content(
                text=blocks.get("text", body),
                subject=blocks.get("subject"),
                html=blocks.get("html"),
            )
        return Content(text=body)


def _variables(context: MessageContext) -> dict[str, Any]:
    checkout = context.checkout
    customer = checkout.customer
    discount = context.discount
    return {
        "first_name": (customer.first_name if customer else None) or "",
        "items": [
            {"title": li.title, "variant": li.variant, "quantity": li.quantity}
            for li in checkout.line_items
        ],
        "item_count": sum(li.quantity for li in checkout.line_items),
        "total": f"{checkout.total} {checkout.currency}",
        "shop_name": context.shop.name,
        "link": context.link,
        "discount_code": discount.code if discount else None,
        "discount_percent": discount.percent if discount else None,
        "discount_expires": _day(discount.expires_at) if discount else None,
        "unsubscribe_url": context.unsubscribe_url,
    }


def _day(value: datetime) -> str:
    return value.date().isoformat()
