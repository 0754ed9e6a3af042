"""A buyer's name is text a stranger wrote, sent from the shop's own sender: the renderer prints
it only when it cannot be read as a link, an address or a number, and keeps every rendered
field within what the channel accepts."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from cartrescue.errors import TemplateError
from cartrescue.models import Discount
from cartrescue.render import (
    NAME_LIMIT,
    SUBJECT_LIMIT,
    WHATSAPP_PARAMETER_LIMIT,
    TemplateRenderer,
    printable_name,
)

from .test_render import NOW, context, write

PRINTED = ["Kari", "Anne-Marie", "José", "O'Neil", "محمد", "李", "Kari Nordmann", "J.R.", "Ola 2"]
NOT_PRINTED = [
    "evil.example",
    "Go to evil.example/refund",
    "http://x",
    "kari@example.no",
    "+47 912 34 567",
    "www.x.no",
    "x" * 200,
    "A" * (NAME_LIMIT + 1),
    "Call 1881",
    "refund at evil。example",  # an ideographic full stop: some clients link it too
    "ｅｖｉｌ．ｅｘａｍｐｌｅ",  # full-width letters and dot
    "kari＠example",  # a full-width at sign
    "evil.example\\refund",
    "WWW evil",
]
LOCALES = ["en", "nb", "fi", "hu", "pt-BR", "ar"]


@pytest.mark.parametrize("name", PRINTED)
def test_ordinary_names_are_printed(name: str) -> None:
    assert printable_name(name) == name
    content = TemplateRenderer().render("email", 1, context(name=name, locale="en"))
    assert content.subject == f"{name}, you left something in your cart"
    assert f"Hi {name}," in content.text


@pytest.mark.parametrize("name", NOT_PRINTED)
def test_names_that_look_like_links_addresses_or_numbers_are_not_printed(name: str) -> None:
    assert printable_name(name) == ""
    text = TemplateRenderer().render("sms", 2, context(name=name, locale="en")).text
    assert text.startswith("Nordlys Design: Hi, ")  # the greeting without a name
    content = TemplateRenderer().render("email", 1, context(name=name, locale="en"))
    assert content.subject == "You left something in your cart"
    assert content.text.startswith("Hi,\n")


def test_the_name_limit_counts_characters_after_folding_whitespace() -> None:
    assert printable_name("A" * NAME_LIMIT) == "A" * NAME_LIMIT
    assert printable_name("  Kari \n Nordmann ") == "Kari Nordmann"
    assert printable_name(None) == ""
    assert printable_name("   ") == ""


@pytest.mark.parametrize("name", ["Go to evil.example/refund", "+47 912 34 567", "x" * 200])
@pytest.mark.parametrize("locale", LOCALES)
def test_no_default_template_prints_an_unsafe_name(name: str, locale: str) -> None:
    renderer = TemplateRenderer()
    discount = Discount("SAVE10", Decimal("10"), NOW + timedelta(days=2))
    for step in (1, 2, 3):
        for offer in (None, discount):
            for channel in ("sms", "email", "whatsapp"):
                content = renderer.render(
                    channel,  # type: ignore[arg-type]
                    step,
                    context(name=name, locale=locale, discount=offer),
                )
                shown = " ".join(
                    [content.text, content.subject or "", content.html or "", *content.parameters]
                )
                assert name not in shown
                assert "evil" not in shown and "912" not in shown and "xxxxx" not in shown


def test_an_owners_template_gets_an_empty_first_name_too(tmp_path: Path) -> None:
    write(tmp_path, "sms/1.en.j2", "{{ shop_name }}: [{{ first_name }}] {{ link }} STOP")
    renderer = TemplateRenderer([tmp_path])
    text = renderer.render("sms", 1, context(name="Go to evil.example/refund", locale="en")).text
    assert text.startswith("Nordlys Design: [] ")
    text = renderer.render("sms", 1, context(name="Kari", locale="en")).text
    assert text.startswith("Nordlys Design: [Kari] ")


def test_the_email_subject_is_one_line_of_at_most_the_limit(tmp_path: Path) -> None:
    write(
        tmp_path,
        "email/1.en.j2",
        "{% block subject %}{{ product }}\r\nBcc: someone{% endblock %}"
        "{% block text %}{{ link }}{% endblock %}",
    )
    content = TemplateRenderer([tmp_path]).render(
        "email", 1, context(titles=("Ullteppe " * 12_000,), locale="en")
    )
    assert content.subject is not None
    assert len(content.subject) <= SUBJECT_LIMIT
    assert content.subject.endswith("…")
    assert "\r" not in content.subject and "\n" not in content.subject
    assert content.subject.startswith("Ullteppe Ullteppe")


def test_a_long_whatsapp_parameter_is_shortened_not_failed() -> None:
    title = "Håndstrikket lusekofte i ren norsk ull " * 60  # 2 340 characters
    content = TemplateRenderer().render("whatsapp", 1, context(titles=(title,), locale="en"))
    assert all(len(p) <= WHATSAPP_PARAMETER_LIMIT for p in content.parameters)
    assert len(content.text.split("\n[")[0]) <= 1024
    assert any(
        p.startswith("Håndstrikket lusekofte") and p.endswith("…") for p in content.parameters
    )
    assert content.parameters[0] == "Kari"


def test_a_whatsapp_parameter_without_a_body_is_shortened_to_the_parameter_limit(
    tmp_path: Path,
) -> None:
    write(
        tmp_path,
        "whatsapp/1.en.j2",
        "{% block template %}cart_reminder_1{% endblock %}{% block language %}en{% endblock %}"
        "{% block parameters %}\n{{ first_name }}\n{{ product }}\n{% endblock %}",
    )
    content = TemplateRenderer([tmp_path]).render(
        "whatsapp", 1, context(titles=("Ullteppe " * 500,), locale="en")
    )
    assert content.parameters[0] == "Kari"
    assert len(content.parameters[1]) == WHATSAPP_PARAMETER_LIMIT
    assert content.parameters[1].endswith("…")


def test_whatsapp_that_cannot_be_shortened_enough_is_a_template_error(tmp_path: Path) -> None:
    write(
        tmp_path,
        "whatsapp/1.en.j2",
        "{% block template %}cart_reminder_1{% endblock %}{% block language %}en{% endblock %}"
        "{% block parameters %}\n{{ shop_name * 100 }}\n{% endblock %}",
    )
    with pytest.raises(TemplateError, match="1024"):
        TemplateRenderer([tmp_path]).render("whatsapp", 1, context(locale="en"))
