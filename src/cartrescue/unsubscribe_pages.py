"""The texts of the unsubscribe page, one small table per shipped locale.

Each text is a ``str.format`` pattern with ``{shop}`` (the shop's name) and ``{who}`` (the
masked address or number); both are HTML-escaped and isolated (``<bdi>``) before they are put
in, so a Latin address reads right inside an Arabic sentence. To add a locale, add a
:class:`PageTexts` to :data:`TEXTS` under its name (``nb``, ``pt-BR``); ``direction`` is
``"rtl"`` for right-to-left scripts.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Literal

from .inbound import InboundResponse

__all__ = ["TEXTS", "PageTexts", "page_locale", "unsubscribe_page"]


@dataclass(frozen=True, slots=True)
class PageTexts:
    ask_title: str
    ask: str
    button: str
    done_title: str
    done: str
    invalid_title: str
    invalid: str
    direction: Literal["ltr", "rtl"] = "ltr"


TEXTS: dict[str, PageTexts] = {
    "en": PageTexts(
        ask_title="Unsubscribe",
        ask="Stop cart reminders from {shop} to {who}?",
        button="Unsubscribe",
        done_title="You are unsubscribed",
        done="{who} gets no more reminders from {shop}.",
        invalid_title="This link is not valid",
        invalid="Nothing was changed.",
    ),
    "nb": PageTexts(
        ask_title="Meld deg av",
        ask="Vil du stoppe påminnelser om handlekurven fra {shop} til {who}?",
        button="Meld deg av",
        done_title="Du er meldt av",
        done="{who} får ikke flere påminnelser fra {shop}.",
        invalid_title="Denne lenken er ikke gyldig",
        invalid="Ingenting ble endret.",
    ),
    "fi": PageTexts(
        ask_title="Peru tilaus",
        ask="Lopetetaanko ostoskorimuistutukset ({shop}) vastaanottajalle {who}?",
        button="Peru tilaus",
        done_title="Tilaus on peruttu",
        done="{who} ei saa enää muistutuksia ({shop}).",
        invalid_title="Tämä linkki ei ole voimassa",
        invalid="Mitään ei muutettu.",
    ),
    "hu": PageTexts(
        ask_title="Leiratkozás",
        ask="Leállítja a kosáremlékeztetőket ({shop}) erre a címre: {who}?",
        button="Leiratkozom",
        done_title="Sikeresen leiratkozott",
        done="{who} nem kap több emlékeztetőt ({shop}).",
        invalid_title="Ez a link nem érvényes",
        invalid="Semmi sem változott.",
    ),
    "ar": PageTexts(
        ask_title="إلغاء الاشتراك",
        ask="هل تريد إيقاف تذكيرات السلة من {shop} إلى {who}؟",
        button="إلغاء الاشتراك",
        done_title="تم إلغاء اشتراكك",
        done="لن يتلقى {who} أي تذكيرات أخرى من {shop}.",
        invalid_title="هذا الرابط غير صالح",
        invalid="لم يتم تغيير أي شيء.",
        direction="rtl",
    ),
    "pt-BR": PageTexts(
        ask_title="Cancelar inscrição",
        ask="Parar os lembretes de carrinho de {shop} para {who}?",
        button="Cancelar inscrição",
        done_title="Sua inscrição foi cancelada",
        done="{who} não receberá mais lembretes de {shop}.",
        invalid_title="Este link não é válido",
        invalid="Nada foi alterado.",
    ),
}


def page_locale(*candidates: str | None) -> str:
    """The first of ``candidates`` that has texts: the locale itself (``pt-BR``), its
    language (``nb-NO`` → ``nb``), or another region of that language (``pt`` → ``pt-BR``);
    else ``en``."""
    for candidate in candidates:
        if not candidate:
            continue
        wanted = candidate.replace("_", "-").strip()
        language = wanted.split("-")[0].lower()
        for name in TEXTS:
            if name.lower() == wanted.lower():
                return name
        for name in TEXTS:
            if name.split("-")[0].lower() == language:
                return name
    return "en"


def unsubscribe_page(
    status: int,
    locale: str,
    kind: Literal["ask", "done", "invalid"],
    *,
    shop: str = "",
    who: str = "",
) -> InboundResponse:
    """The page for ``kind`` in ``locale`` (one of :data:`TEXTS`)."""
    texts = TEXTS[locale]
    values = {
        "shop": f"<bdi>{html.escape(shop)}</bdi>",
        "who": f"<bdi>{html.escape(who)}</bdi>",
    }
    if kind == "invalid":
        return InboundResponse.page(
            status,
            texts.invalid_title,
            f"<p>{html.escape(texts.invalid)}</p>",
            lang=locale,
            direction=texts.direction,
        )
    if kind == "done":
        return InboundResponse.page(
            status,
            texts.done_title,
            f"<p>{html.escape(texts.done).format(**values)}</p>",
            lang=locale,
            direction=texts.direction,
        )
    return InboundResponse.page(
        status,
        texts.ask_title,
        f"<p>{html.escape(texts.ask).format(**values)}</p>"
        '<form method=post><input type=hidden name="List-Unsubscribe" value="One-Click">'
        f"<button type=submit>{html.escape(texts.button)}</button></form>",
        lang=locale,
        direction=texts.direction,
    )
