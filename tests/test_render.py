"""The renderer: lookup, context, sandboxing, escaping, fitting, channel shapes."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from babel import Locale
from babel.numbers import (
    get_currency_precision,
    get_currency_symbol,
    get_decimal_symbol,
    parse_decimal,
)

from cartrescue import Recovery, SQLiteStore
from cartrescue.clock import FrozenClock
from cartrescue.demo import DemoConnector
from cartrescue.errors import MessageTooLong, TemplateError
from cartrescue.models import Checkout, Customer, Discount, LineItem, ShopInfo
from cartrescue.render import MessageContext, Renderer, TemplateRenderer, normalize_locale
from cartrescue.sms import measure
from cartrescue_testing.memory import MemoryChannel

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
SHOP = ShopInfo(name="Nordlys Design", locale="en", timezone="Europe/Oslo")
LINK = "https://s.no/Ab3dE9x"


def checkout(
    *,
    name: str | None = "Kari",
    locale: str | None = "nb",
    titles: tuple[str, ...] = ("Ullteppe",),
    currency: str = "NOK",
    total: str = "1290.00",
    variant: str | None = None,
) -> Checkout:
    return Checkout(
        id="c1",
        abandoned_at=NOW - timedelta(hours=1),
        updated_at=NOW - timedelta(hours=1),
        recovery_url="https://shop.example/recover?key=1",
        currency=currency,
        total=Decimal(total),
        line_items=tuple(LineItem(t, 1, Decimal("10"), variant) for t in titles),
        customer=Customer(first_name=name, locale=locale),
    )


def context(**kwargs: object) -> MessageContext:
    discount = kwargs.pop("discount", None)
    shop = kwargs.pop("shop", SHOP)
    link = kwargs.pop("link", LINK)
    locale = kwargs.pop("locale", "nb")
    return MessageContext(
        checkout=checkout(**kwargs),  # type: ignore[arg-type]
        shop=shop,  # type: ignore[arg-type]
        locale=locale,  # type: ignore[arg-type]
        link=link,  # type: ignore[arg-type]
        discount=discount,  # type: ignore[arg-type]
    )


def write(folder: Path, name: str, text: str) -> None:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_renderer_protocol() -> None:
    assert isinstance(TemplateRenderer(), Renderer)


# -- lookup ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "expected"),
    [("pt_br", "pt-BR"), ("NB-no", "nb-NO"), ("en", "en"), ("zh_hant_tw", "zh-Hant-TW"), ("", "")],
)
def test_normalize_locale(raw: str, expected: str) -> None:
    assert normalize_locale(raw) == expected


@pytest.mark.parametrize(
    ("locale", "shop_locale", "expected"),
    [
        ("nb-NO", "en", "sms/1.nb.j2"),
        ("nb", "en", "sms/1.nb.j2"),
        ("no", "en", "sms/1.nb.j2"),
        ("pt", "en", "sms/1.pt-BR.j2"),
        ("pt-PT", "en", "sms/1.pt-BR.j2"),
        ("pt_BR", "en", "sms/1.pt-BR.j2"),
        ("ar-SA", "en", "sms/1.ar.j2"),
        ("de-DE", "fi", "sms/1.fi.j2"),
        ("de-DE", "fr", "sms/1.en.j2"),
        ("", "hu-HU", "sms/1.hu.j2"),
    ],
)
def test_locale_fallback(locale: str, shop_locale: str, expected: str) -> None:
    assert TemplateRenderer().resolve("sms", 1, locale, shop_locale) == expected


def test_shop_locale_option_overrides_the_context_shop(tmp_path: Path) -> None:
    renderer = TemplateRenderer(shop_locale="fi")
    content = renderer.render("sms", 1, context(locale="de"))
    assert "Ostoskori" in content.text


def test_missing_template_names_what_was_tried() -> None:
    with pytest.raises(TemplateError, match=r"sms/9\.nb-NO\.j2, sms/9\.nb\.j2.*sms/9\.en\.j2"):
        TemplateRenderer().render("sms", 9, context(locale="nb-NO"))


def test_user_folder_comes_first_and_may_add_locales(tmp_path: Path) -> None:
    write(tmp_path, "sms/1.nb.j2", "{{ shop_name }}: egen tekst {{ link }}")
    write(tmp_path, "sms/1.de.j2", "{{ shop_name }}: Dein Warenkorb wartet {{ link }}")
    renderer = TemplateRenderer([tmp_path])
    assert renderer.render("sms", 1, context()).text == f"Nordlys Design: egen tekst {LINK}"
    german = renderer.render("sms", 1, context(locale="de-AT"))
    assert german.text == f"Nordlys Design: Dein Warenkorb wartet {LINK}"
    # Templates the folder does not have still come from the package.
    assert "Hei Kari" in renderer.render("sms", 2, context()).text
    assert "de" in renderer.locales("sms")


# -- context --------------------------------------------------------------------------------
def test_context_names(tmp_path: Path) -> None:
    write(
        tmp_path,
        "sms/1.nb.j2",
        "{{ first_name }}|{{ product }}|{{ more_items }}|{{ item_count }}|{{ total }}|"
        "{{ shop_name }}|{{ link_path }}|{{ discount_code }}|{{ discount_percent }}|"
        "{{ discount_expires }}|{{ discount_in_link }}|{{ locale }}|{{ direction }}|"
        "{% for i in items %}{{ i.title }}/{{ i.variant }}/{{ i.quantity }};{% endfor %}",
    )
    discount = Discount("BACK10", Decimal("12.5"), NOW + timedelta(hours=48), url=LINK)
    text = (
        TemplateRenderer([tmp_path], smart_encoding=False, max_segments=2)
        .render(
            "sms",
            1,
            context(titles=("Ullteppe", "Pute"), total="12345.6", variant="Blå", discount=discount),
        )
        .text
    )
    assert text == (
        "Kari|Ullteppe|1|2|12\u00a0345,60\u00a0kr|Nordlys Design|Ab3dE9x|BACK10|12,5|"
        "12. mars|True|nb|ltr|Ullteppe/Blå/1;Pute/Blå/1;"
    )


@pytest.mark.parametrize(
    ("locale", "currency"),
    [("en", "USD"), ("fi", "EUR"), ("hu", "HUF"), ("pt-BR", "BRL"), ("nb-NO", "NOK")],
)
def test_total_is_formatted_for_the_locale(tmp_path: Path, locale: str, currency: str) -> None:
    """cartrescue's money rule: the locale's currency symbol, decimal sign and grouping, and as
    many decimals as the currency has. How many that is, CLDR decides (it changed for HUF), so
    the test asks the same data instead of pinning one release's string."""
    write(tmp_path, "email/1.xx.j2", "")
    for name in ("en", "fi", "hu", "pt-BR", "nb"):
        write(tmp_path, f"sms/7.{name}.j2", "{{ total }}")
    text = (
        TemplateRenderer([tmp_path], smart_encoding=False)
        .render("sms", 7, context(locale=locale, currency=currency, total="1290.25"))
        .text
    )
    cldr = Locale.parse(locale, sep="-")
    symbol = get_currency_symbol(currency, locale=cldr)
    assert symbol in text
    number = "".join(text.replace(symbol, "").split())
    digits = get_currency_precision(currency)
    assert parse_decimal(number, locale=cldr, strict=True) == Decimal("1290.25").quantize(
        Decimal(1).scaleb(-digits)
    )
    _, sign, fraction = number.rpartition(get_decimal_symbol(cldr))
    assert len(fraction) == digits if sign else digits == 0


def test_arabic_is_right_to_left(tmp_path: Path) -> None:
    write(tmp_path, "sms/7.ar.j2", "{{ direction }} {{ language }}")
    assert TemplateRenderer([tmp_path]).render("sms", 7, context(locale="ar")).text == "rtl ar"


def test_an_undefined_name_is_an_error_naming_the_template(tmp_path: Path) -> None:
    write(tmp_path, "sms/1.nb.j2", "Hei {{ frist_name }}")
    with pytest.raises(TemplateError, match=r"sms/1\.nb\.j2.*frist_name"):
        TemplateRenderer([tmp_path]).render("sms", 1, context())


def test_a_syntax_error_names_the_template_and_line(tmp_path: Path) -> None:
    write(tmp_path, "sms/1.nb.j2", "Hei\n{% if first_name %}")
    with pytest.raises(TemplateError, match=r"sms/1\.nb\.j2: line 2"):
        TemplateRenderer([tmp_path]).render("sms", 1, context())


def test_a_failing_expression_is_a_template_error(tmp_path: Path) -> None:
    write(tmp_path, "sms/1.nb.j2", "{{ 1 / 0 }}")
    with pytest.raises(TemplateError, match="ZeroDivisionError"):
        TemplateRenderer([tmp_path]).render("sms", 1, context())


def test_the_sandbox_refuses_unsafe_attributes(tmp_path: Path) -> None:
    write(tmp_path, "sms/1.nb.j2", "{{ items.__class__.__mro__ }}")
    with pytest.raises(TemplateError):
        TemplateRenderer([tmp_path]).render("sms", 1, context())


@pytest.mark.parametrize(
    "name", ["{{ 7*7 }}", "{% for x in items %}boom{% endfor %}", "{{ shop_name }}"]
)
@pytest.mark.parametrize("channel", ["sms", "whatsapp", "email"])
def test_customer_data_is_data_never_template_source(name: str, channel: str) -> None:
    content = TemplateRenderer().render(channel, 2, context(name=name, locale="en"))  # type: ignore[arg-type]
    shown = content.text + (content.subject or "") + " ".join(content.parameters)
    assert name in shown
    assert "49" not in shown
    assert "boom" not in shown.replace(name, "")


def test_html_email_escapes_customer_data_and_plain_text_does_not() -> None:
    evil = '<img src=x onerror="alert(1)">'
    content = TemplateRenderer().render(
        "email", 1, context(name=evil, titles=("<b>Scarf</b> & hat",), locale="en")
    )
    assert content.html is not None
    assert "<script>" not in content.html
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in content.html
    assert "&lt;b&gt;Scarf&lt;/b&gt; &amp; hat" in content.html
    assert evil in content.text
    assert "<b>Scarf</b> & hat" in content.text
    assert content.html.startswith("<!DOCTYPE html>")


def test_email_subject_is_one_line_even_with_a_newline_in_the_name() -> None:
    content = TemplateRenderer().render("email", 1, context(name="Kari\r\nBcc: Ola", locale="en"))
    assert content.subject == "Kari Bcc: Ola, you left something in your cart"


def test_email_needs_a_subject(tmp_path: Path) -> None:
    write(tmp_path, "email/1.nb.j2", "{% block text %}Hei{% endblock %}")
    with pytest.raises(TemplateError, match="subject"):
        TemplateRenderer([tmp_path]).render("email", 1, context())


def test_email_without_html_block_is_plain_text(tmp_path: Path) -> None:
    write(
        tmp_path,
        "email/1.nb.j2",
        "{% block subject %}Hei{% endblock %}{% block text %}Tekst{% endblock %}",
    )
    content = TemplateRenderer([tmp_path]).render("email", 1, context())
    assert (content.subject, content.text, content.html) == ("Hei", "Tekst", None)


# -- SMS fitting ----------------------------------------------------------------------------
VARIANTS = (
    "{% block variant1 %}{{ shop_name }}: Hei {{ first_name }}! {{ product }} venter: {{ link }}"
    " STOP{% endblock %}"
    "{% block variant2 %}{{ shop_name }}: Hei {{ first_name }}! Handlekurven venter: {{ link }}"
    " STOP{% endblock %}"
)


def test_first_variant_that_fits_is_sent(tmp_path: Path) -> None:
    write(tmp_path, "sms/1.nb.j2", VARIANTS)
    renderer = TemplateRenderer([tmp_path])
    short = renderer.render("sms", 1, context(titles=("Ullteppe",))).text
    assert short == f"Nordlys Design: Hei Kari! Ullteppe venter: {LINK} STOP"
    long = renderer.render("sms", 1, context(titles=("x" * 120,))).text
    assert long == f"Nordlys Design: Hei Kari! Handlekurven venter: {LINK} STOP"


def test_render_with_notes_says_which_variant_fitted(tmp_path: Path) -> None:
    write(tmp_path, "sms/1.nb.j2", VARIANTS)
    renderer = TemplateRenderer([tmp_path])
    first, notes = renderer.render_with_notes("sms", 1, context(titles=("Ullteppe",)))
    assert (first, notes) == (renderer.render("sms", 1, context(titles=("Ullteppe",))), ())
    _, notes = renderer.render_with_notes("sms", 1, context(titles=("x" * 120,)))
    assert notes == ("variant 2 of 2",)


def test_title_then_name_are_shortened_with_an_ellipsis(tmp_path: Path) -> None:
    template = "{{ shop_name }}: Hei {{ first_name }}! {{ product }} venter: {{ link }} Svar STOP"
    write(tmp_path, "sms/1.nb.j2", template)
    renderer = TemplateRenderer([tmp_path])
    title = "Håndstrikket lusekofte i ren norsk ull, marineblå " * 3
    text = renderer.render("sms", 1, context(titles=(title,))).text
    assert measure(text).units == 160
    assert text.startswith("Nordlys Design: Hei Kari! Håndstrikket lusekofte")
    assert "... venter: " in text  # GSM-7 message: three dots, not the one-character ellipsis
    assert text.endswith(f"{LINK} Svar STOP")

    longer = (
        "{{ shop_name }}: Hei {{ first_name }}! {{ product }} venter fortsatt på deg i "
        "handlekurven, og vi har tatt godt vare på den for deg: {{ link }} Svar STOP"
    )
    write(tmp_path, "sms/2.nb.j2", longer)
    name = "Anne-Marthe Kristine Solveig Johannessen"  # as long as a printed name may be
    text = renderer.render("sms", 2, context(titles=(title,), name=name)).text
    assert measure(text).fits()
    assert "Hei Anne-Marthe" in text
    assert "! H... venter" in text  # the title went down to one letter before the name was cut
    assert text.endswith(f"{LINK} Svar STOP")


def test_in_ucs2_the_ellipsis_is_one_character(tmp_path: Path) -> None:
    write(tmp_path, "sms/1.ar.j2", "{{ shop_name }}: {{ product }} {{ link }} للإلغاء STOP")
    text = (
        TemplateRenderer([tmp_path])
        .render("sms", 1, context(locale="ar", titles=("وسادة " * 20,)))
        .text
    )
    length = measure(text)
    assert length.encoding == "UCS-2"
    assert length.units == 70
    assert "…" in text
    assert "..." not in text


def test_nothing_fits_names_template_locale_and_length(tmp_path: Path) -> None:
    write(
        tmp_path,
        "sms/1.nb.j2",
        "{{ shop_name }}: {{ link }} " + "Svar STOP for å melde deg av " * 5,
    )
    with pytest.raises(MessageTooLong) as caught:
        TemplateRenderer([tmp_path]).render("sms", 1, context(locale="nb-NO"))
    err = caught.value
    assert (err.template, err.locale, err.encoding, err.limit) == (
        "sms/1.nb.j2",
        "nb-NO",
        "GSM-7",
        160,
    )
    assert err.units == 16 + 21 + 29 * 5 - 1
    assert "sms/1.nb.j2 (nb-NO) is 181 GSM-7 units" in str(err)


def test_link_code_and_opt_out_are_never_cut(tmp_path: Path) -> None:
    long_link = "https://shop.example/" + "r" * 90
    write(
        tmp_path,
        "sms/3.nb.j2",
        "{{ first_name }} {{ product }} {{ discount_code }} {{ link }} STOP",
    )
    discount = Discount("KODE-" + "9" * 20, Decimal(10), NOW + timedelta(days=2))
    text = (
        TemplateRenderer([tmp_path])
        .render(
            "sms",
            3,
            context(link=long_link, discount=discount, name="Kari" * 10, titles=("Pute" * 20,)),
        )
        .text
    )
    assert text.endswith(f"KODE-{'9' * 20} {long_link} STOP")
    assert measure(text).fits()


def test_max_segments(tmp_path: Path) -> None:
    write(tmp_path, "sms/1.nb.j2", "{{ product }} {{ link }}")
    ctx = context(titles=("a" * 250,))
    one = TemplateRenderer([tmp_path]).render("sms", 1, ctx).text
    two = TemplateRenderer([tmp_path], max_segments=2).render("sms", 1, ctx).text
    assert measure(one).segments == 1
    assert measure(two).segments == 2
    assert two == "a" * 250 + " " + LINK
    with pytest.raises(ValueError, match="between 1 and 10"):
        TemplateRenderer(max_segments=0)


def test_two_segment_limit_is_reported(tmp_path: Path) -> None:
    write(tmp_path, "sms/1.nb.j2", "{{ link }} " + "x" * 400)
    with pytest.raises(MessageTooLong) as caught:
        TemplateRenderer([tmp_path], max_segments=2).render("sms", 1, context())
    assert caught.value.limit == 306


def test_smart_encoding_keeps_the_message_in_gsm(tmp_path: Path) -> None:
    write(tmp_path, "sms/1.nb.j2", "{{ shop_name }}: “{{ product }}” – {{ total }} {{ link }}")
    ctx = context(titles=("Kari’s sjal",))
    on = TemplateRenderer([tmp_path]).render("sms", 1, ctx).text
    off = TemplateRenderer([tmp_path], smart_encoding=False).render("sms", 1, ctx).text
    assert on == f'Nordlys Design: "Kari\'s sjal" - 1 290,00 kr {LINK}'
    assert measure(on).encoding == "GSM-7"
    assert measure(off).encoding == "UCS-2"


def test_smart_encoding_is_not_applied_when_the_text_stays_ucs2(tmp_path: Path) -> None:
    write(tmp_path, "sms/1.hu.j2", "{{ product }}… “{{ first_name }}” {{ link }}")
    text = (
        TemplateRenderer([tmp_path])
        .render("sms", 1, context(locale="hu", name="László", titles=("Váza",)))
        .text
    )
    assert text == f"Váza… “László” {LINK}"


def test_smart_encoding_never_touches_the_link(tmp_path: Path) -> None:
    odd_link = "https://shop.example/r/`quoted`"
    write(tmp_path, "sms/1.nb.j2", "{{ product }} {{ link }}")
    text = (
        TemplateRenderer([tmp_path])
        .render("sms", 1, context(link=odd_link, titles=("Kari’s",)))
        .text
    )
    assert text == "Kari’s " + odd_link  # leaving the link whole keeps it UCS-2


def test_an_empty_variant_is_skipped(tmp_path: Path) -> None:
    write(
        tmp_path,
        "sms/1.nb.j2",
        "{% block variant1 %}{% if product %}{{ product }}{% endif %}{% endblock %}"
        "{% block variant2 %}Handlekurven din{% endblock %}",
    )
    assert TemplateRenderer([tmp_path]).render("sms", 1, context(titles=())).text == (
        "Handlekurven din"
    )
    write(tmp_path, "sms/2.nb.j2", "{% if product %}{{ product }}{% endif %}")
    with pytest.raises(TemplateError, match="empty"):
        TemplateRenderer([tmp_path]).render("sms", 2, context(titles=()))


def test_top_level_set_is_visible_in_variants(tmp_path: Path) -> None:
    write(
        tmp_path,
        "sms/1.nb.j2",
        '{% set stop = "Svar STOP" %}{% block variant1 %}{{ link }} {{ stop }}{% endblock %}',
    )
    assert TemplateRenderer([tmp_path]).render("sms", 1, context()).text == f"{LINK} Svar STOP"


# -- WhatsApp -------------------------------------------------------------------------------
def test_whatsapp_shape() -> None:
    content = TemplateRenderer().render(
        "whatsapp", 1, context(locale="pt-BR", name="João", titles=("Caneca", "Prato", "Copo"))
    )
    assert content.template == "cart_reminder_1"
    assert content.language == "pt_BR"
    assert content.parameters == ("João", "Caneca e mais 2 itens", "Nordlys Design")
    assert content.button_parameter == "Ab3dE9x"
    assert content.text.startswith("Olá, João! Você deixou Caneca e mais 2 itens no seu carrinho")
    assert content.text.endswith(f"[{LINK}]")


def test_whatsapp_parameters_have_no_newlines_tabs_or_runs_of_spaces() -> None:
    content = TemplateRenderer().render(
        "whatsapp", 1, context(locale="en", name="Kari\n\tNordmann", titles=("Wool     scarf",))
    )
    assert content.parameters[:2] == ("Kari Nordmann", "Wool scarf")


def test_whatsapp_empty_parameter_is_an_error(tmp_path: Path) -> None:
    write(
        tmp_path,
        "whatsapp/1.nb.j2",
        "{% block template %}x{% endblock %}{% block language %}nb{% endblock %}"
        "{% block parameters %}\n{{ first_name }}\n{{ shop_name }}\n{% endblock %}",
    )
    with pytest.raises(TemplateError, match="parameter 1 is empty"):
        TemplateRenderer([tmp_path]).render("whatsapp", 1, context(name=None))


@pytest.mark.parametrize(
    ("blocks", "message"),
    [
        ("{% block template %}Cart Reminder{% endblock %}{% block language %}nb{% endblock %}",
         "approved template's name"),
        ("{% block template %}x{% endblock %}{% block language %}nb-NO{% endblock %}",
         "Meta language code"),
        ("{% block template %}x{% endblock %}{% block language %}nb{% endblock %}"
         "{% block parameters %}{{ shop_name }}{% endblock %}"
         "{% block body %}{% raw %}{{1}} {{2}}{% endraw %}{% endblock %}",
         "uses {{2}} but there are 1"),
        ("{% block template %}x{% endblock %}{% block language %}nb{% endblock %}"
         "{% block body %}" + "x" * 1025 + "{% endblock %}",
         "1025 characters"),
    ],
)  # fmt: skip
def test_whatsapp_template_mistakes(tmp_path: Path, blocks: str, message: str) -> None:
    write(tmp_path, "whatsapp/1.nb.j2", blocks)
    with pytest.raises(TemplateError, match=message.replace("{", r"\{").replace("}", r"\}")):
        TemplateRenderer([tmp_path]).render("whatsapp", 1, context())


def demo_shop_file(folder: Path, **customer: object) -> Path:
    """A demo-connector data file with one Norwegian checkout left 70 minutes ago, whose
    customer consented to SMS; ``customer`` adds or replaces customer fields."""
    data = {
        "shop": {"name": "Nordlys Design", "locale": "nb", "timezone": "Europe/Oslo"},
        "checkouts": [
            {
                "id": "77",
                "minutes_ago": 70,
                "currency": "NOK",
                "total": "100.00",
                "items": [{"title": "Pute", "quantity": 1, "price": "100.00"}],
                "customer": {
                    "first_name": "Kari",
                    "phone": "+47 912 34 567",
                    "country": "NO",
                    "locale": "nb",
                    "sms_consent": True,
                    **customer,
                },
            }
        ],
    }
    path = folder / "shop.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


# -- the engine records what does not fit ---------------------------------------------------
def test_engine_records_a_message_that_does_not_fit(tmp_path: Path) -> None:
    path = demo_shop_file(tmp_path)
    write(tmp_path / "t", "sms/1.nb.j2", "{{ link }} " + "Svar STOP " * 20)
    clock = FrozenClock(datetime(2026, 3, 10, 12, 0, tzinfo=UTC))
    store = SQLiteStore(":memory:")
    store.start_at(clock() - timedelta(days=1))
    sms = MemoryChannel("sms")
    recovery = Recovery(
        DemoConnector(str(path), clock=clock),
        [sms],
        store,
        clock=clock,
        shop=ShopInfo("Nordlys Design", "nb", "Europe/Oslo"),
        renderer=TemplateRenderer([tmp_path / "t"]),
    )
    report = recovery.run()
    assert sms.sent == []
    assert report.counts["failed: not rendered"] == 1
    assert report.failures[0][0] == "77"
    assert "sms/1.nb.j2 (nb)" in report.failures[0][1]
    assert "GSM-7 units" in report.failures[0][1]
    stats = store.stats(clock())
    assert stats.messages == {(1, "sms", "not_rendered"): 1}
    assert stats.not_rendered == 1


def test_a_parent_with_a_top_level_set_still_gives_its_variables_to_blocks(
    tmp_path: Path,
) -> None:
    write(tmp_path, "sms/base.j2", '{% set stop = "Svar STOP" %}{% block variant1 %}{% endblock %}')
    write(
        tmp_path,
        "sms/1.nb.j2",
        '{% extends "sms/base.j2" %}{% block variant1 %}{{ link }} {{ stop }}{% endblock %}',
    )
    assert TemplateRenderer([tmp_path]).render("sms", 1, context()).text == f"{LINK} Svar STOP"


def test_blocks_of_every_ancestor_are_reachable_without_rendering_the_layout(
    tmp_path: Path,
) -> None:
    write(tmp_path, "sms/layout.j2", "{% block word %}{% endblock %}{% block stop %}{% endblock %}")
    write(
        tmp_path,
        "sms/words.j2",
        '{% extends "sms/layout.j2" %}{% block word %}Hei{% endblock %}'
        "{% block stop %}Svar STOP{% endblock %}",
    )
    write(
        tmp_path,
        "sms/1.nb.j2",
        '{% extends "sms/words.j2" %}'
        "{% block variant1 %}{{ self.word() }} {{ link }} {{ self.stop() }}{% endblock %}",
    )
    assert TemplateRenderer([tmp_path]).render("sms", 1, context()).text == f"Hei {LINK} Svar STOP"


def test_incentive_and_free_shipping_remaining(tmp_path: Path) -> None:
    (tmp_path / "sms").mkdir()
    (tmp_path / "sms" / "1.en.j2").write_text(
        "{% if incentive %}{{ incentive.kind }} {{ incentive.amount }} {{ incentive.code }} "
        "{{ incentive.expires }}{% endif %}"
        "{% if free_shipping_remaining %} {{ free_shipping_remaining }} to free shipping"
        "{% endif %} {{ link }}"
    )
    renderer = TemplateRenderer([tmp_path])
    shop = ShopInfo(name="N", locale="en", free_shipping_threshold=Decimal(1500))
    offer = Discount(code="BACK10", percent=Decimal(10), expires_at=NOW + timedelta(days=2))
    text = renderer.render("sms", 1, context(shop=shop, locale="en", discount=offer)).text
    assert text.startswith("percent 10 BACK10 March 12 NOK")
    assert "210.00 to free shipping" in text
    over = ShopInfo(name="N", locale="en", free_shipping_threshold=Decimal(1000))
    text = renderer.render("sms", 1, context(shop=over, locale="en")).text
    assert text.strip() == LINK
    other = replace(shop, free_shipping_currency="EUR")
    assert "free shipping" not in renderer.render("sms", 1, context(shop=other, locale="en")).text


def test_send_threads_rendering_at_once_compile_a_template_once(tmp_path: Path) -> None:
    # A pass's send threads all render their first message at the same moment; a template
    # compiled once per thread would hold the GIL the sends need.
    import threading

    body = "".join(f"{{% if {n} < 0 %}}{n}{{% endif %}}" for n in range(300))
    write(tmp_path, "sms/1.en.j2", "Hi " + body + " {{ link }}")
    renderer = TemplateRenderer([tmp_path])
    loader = renderer._text_env.loader
    assert loader is not None
    loads: list[str] = []
    original = loader.get_source

    def counted(environment: object, name: str) -> object:
        loads.append(name)
        return original(environment, name)  # type: ignore[arg-type]

    loader.get_source = counted  # type: ignore[method-assign,assignment]
    start = threading.Barrier(8)
    texts: list[str] = []

    def render() -> None:
        start.wait()
        texts.append(renderer.render("sms", 1, context(locale="en")).text)

    threads = [threading.Thread(target=render) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(texts) == 8 and len(set(texts)) == 1
    assert loads.count("sms/1.en.j2") <= 2  # the template itself, and its parse for parents
