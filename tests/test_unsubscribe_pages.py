"""The unsubscribe page speaks the recipient's language and names the shop."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from cartrescue import FrozenClock, Recovery, SQLiteStore
from cartrescue.models import ShopInfo
from cartrescue.unsubscribe import UnsubscribeLinks
from cartrescue.unsubscribe_pages import TEXTS, page_locale
from cartrescue.web import make_app
from cartrescue_testing import MemoryChannel

from .conftest import NOON, make_checkout
from .test_web import call

PUBLIC = "https://shop.example/cartrescue"
SECRET = "unsubscribe-secret-0123456789"
SHOP = ShopInfo(name="Nordlys & Co", locale="en")
SHIPPED = ["en", "nb", "fi", "hu", "ar", "pt-BR"]


@pytest.fixture
def store():
    with SQLiteStore(":memory:") as store:
        yield store


def page(store, url: str, method: str = "GET", shop: ShopInfo = SHOP, **headers: str):
    app = make_app(store, public_url=PUBLIC, unsubscribe_secret=SECRET, shop=shop)
    body = b"List-Unsubscribe=One-Click" if method == "POST" else b""
    return call(app, method, url.removeprefix(PUBLIC), body, headers)


def test_every_shipped_locale_has_its_own_texts():
    assert sorted(TEXTS) == sorted(SHIPPED)
    english = TEXTS["en"]
    for locale in SHIPPED[1:]:
        texts = TEXTS[locale]
        assert texts.button != english.button and texts.done != english.done, locale
        for pattern in (texts.ask, texts.done):
            assert "{shop}" in pattern and "{who}" in pattern, locale
    assert [name for name, t in TEXTS.items() if t.direction == "rtl"] == ["ar"]


@pytest.mark.parametrize("locale", SHIPPED)
def test_the_page_is_in_the_messages_locale_and_names_the_shop(store, locale):
    url = UnsubscribeLinks(PUBLIC, SECRET)("kari@example.no", "email", locale)
    status, _, ask = page(store, url)
    assert status == 200
    text = ask.decode()
    direction = TEXTS[locale].direction
    assert f'<html lang="{locale}" dir="{direction}">' in text
    assert TEXTS[locale].button in text
    assert "<bdi>Nordlys &amp; Co</bdi>" in text  # escaped, and isolated inside rtl text
    assert "<bdi>k***@example.no</bdi>" in text
    status, _, done = page(store, url, "POST")
    assert status == 200
    assert TEXTS[locale].done_title in done.decode()
    assert store.optouts_for(["kari@example.no"]) == {"email"}


@pytest.mark.parametrize(
    ("given", "expected"),
    [("nb-NO", "nb"), ("pt", "pt-BR"), ("pt_br", "pt-BR"), ("AR", "ar"), ("de", "en")],
)
def test_a_locale_falls_back_to_its_language_then_english(given, expected):
    assert page_locale(given) == expected


def test_a_link_without_a_locale_uses_the_shops(store):
    url = UnsubscribeLinks(PUBLIC, SECRET)("kari@example.no", "email")
    shop = ShopInfo(name="Nordlys", locale="fi-FI")
    assert '<html lang="fi"' in page(store, url, shop=shop)[2].decode()


def test_an_invalid_link_answers_in_the_browsers_language(store):
    status, _, body = page(store, f"{PUBLIC}/unsubscribe/{'A' * 60}", **{"Accept-Language": "nb"})
    assert status == 403
    assert TEXTS["nb"].invalid_title in body.decode()


def test_the_engine_puts_the_recipients_locale_in_the_link(store):
    store.start_at(NOON - timedelta(days=1))
    clock = FrozenClock(NOON + timedelta(hours=1))
    email = MemoryChannel("email")
    links = UnsubscribeLinks(PUBLIC, SECRET, clock=clock)
    checkout = make_checkout("c1", phone=None, locale="nb-NO")
    recovery = Recovery(
        _List([checkout]), [email], store, clock=clock, shop=SHOP, unsubscribe=links
    )
    assert recovery.run().counts["sent"] == 1
    (message,) = email.sent
    assert message.unsubscribe_url is not None
    body = page(store, message.unsubscribe_url)[2].decode()
    assert '<html lang="nb" dir="ltr">' in body
    assert re.search(r"Nordlys &amp; Co", body)


class _List:
    name = "list"

    def __init__(self, items):
        self.items = items

    def abandoned_checkouts(self, since):
        yield from self.items

    def find_purchase(self, checkout):
        return None
