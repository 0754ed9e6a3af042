"""Product data on line items: images, tags and collections, the segments that use them, and
what a reminder does about sold-out items. Pure parts here; the platforms' fakes in
test_catalog_end_to_end.py."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest

from cartrescue.config import load_config
from cartrescue.errors import ConfigError, TemplateError
from cartrescue.explain import explain, format_explanation
from cartrescue.models import Checkout, Content, LineItem, ShopInfo, image_url
from cartrescue.policy import Action, History, Policy, SoldOutItems, buyable, decide
from cartrescue.preview import PreviewRow, preview_body
from cartrescue.render import MessageContext, TemplateRenderer
from cartrescue.segments import Segment
from cartrescue.segments import SegmentConditions as C
from cartrescue.store.sqlite import SQLiteStore

from .conftest import NOON, make_checkout

IMG = "https://cdn.shop.example/products/blanket.jpg"


def cart(*lines: LineItem, total: str | None = None) -> Checkout:
    items = tuple(lines)
    value = Decimal(total) if total else sum((li.price * li.quantity for li in items), Decimal(0))
    return replace(make_checkout(), line_items=items, total=value)


def line(title="Wool blanket", price="100", *, tags=None, collections=None, stock=None, image=None):
    return LineItem(
        title,
        1,
        Decimal(price),
        in_stock=stock,
        image_url=image,
        product_tags=None if tags is None else tuple(tags),
        collections=None if collections is None else tuple(collections),
    )


# -- the model ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (IMG, IMG),
        ("  " + IMG + " ", IMG),
        ("HTTPS://cdn.example/a.png", "HTTPS://cdn.example/a.png"),
        ("http://cdn.example/a.png", None),  # mail clients block mixed content
        ("//cdn.example/a.png", None),
        ("https://", None),
        ("https://cdn.example/a b.png", None),
        ('https://cdn.example/a".png', None),
        ("javascript:alert(1)", None),
        ("https://cdn.example/" + "a" * 3000, None),
        (42, None),
        (None, None),
    ],
)
def test_image_url_takes_only_https_links(raw, expected):
    assert image_url(raw) == expected


def test_a_line_item_refuses_an_image_that_is_not_https():
    with pytest.raises(ValueError, match="image_url must be an https:// URL"):
        LineItem("Blanket", 1, Decimal(1), image_url="http://cdn.example/a.png")


def test_product_data_survives_the_store_round_trip():
    checkout = cart(
        line(tags=["Wool", "gift"], collections=["winter-sale", "Winter sale"], image=IMG),
        line("Candle", tags=[], collections=None),
    )
    again = Checkout.from_dict(checkout.to_dict())
    assert again == checkout
    assert again.line_items[1].product_tags == ()
    assert again.line_items[1].collections is None


# -- segments -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("conditions", "checkout", "matches"),
    [
        # any line, any name, any case, spaces ignored
        (C(product_tags=frozenset({"wool"})), cart(line(tags=["Wool"]), line(tags=[])), True),
        (C(product_tags=frozenset({" WOOL "})), cart(line(tags=["wool"])), True),
        (C(product_tags=frozenset({"gift", "wool"})), cart(line(tags=["gift"])), True),
        (C(product_tags=frozenset({"wool"})), cart(line(tags=["cotton"])), False),
        (C(product_tags=frozenset({"wool"})), cart(line(tags=[])), False),
        # a tag is not a substring match
        (C(product_tags=frozenset({"wool"})), cart(line(tags=["merino wool"])), False),
        # data the platform did not give never matches
        (C(product_tags=frozenset({"wool"})), cart(line(tags=None)), False),
        (C(product_tags=frozenset({"wool"})), cart(), False),
        (C(product_tags=frozenset({"wool"})), cart(line(tags=None), line(tags=["wool"])), True),
        # collections: by handle or title
        (C(collections=frozenset({"winter-sale"})), cart(line(collections=["winter-sale"])), True),
        (C(collections=frozenset({"winter sale"})), cart(line(collections=["Winter Sale"])), True),
        (C(collections=frozenset({"summer"})), cart(line(collections=["winter-sale"])), False),
        (C(collections=frozenset({"summer"})), cart(line(collections=None)), False),
        # both given: both must hold (on any lines)
        (
            C(product_tags=frozenset({"wool"}), collections=frozenset({"sale"})),
            cart(line(tags=["wool"], collections=[]), line(tags=[], collections=["sale"])),
            True,
        ),
        (
            C(product_tags=frozenset({"wool"}), collections=frozenset({"sale"})),
            cart(line(tags=["wool"], collections=["new"])),
            False,
        ),
    ],
)
def test_product_conditions(conditions, checkout, matches):
    assert (conditions.failed(checkout) is None) is matches


def test_product_conditions_say_why_they_failed():
    wanted = C(product_tags=frozenset({"wool"}))
    assert wanted.failed(cart(line(tags=None))) == "product tags unknown"
    assert wanted.failed(cart(line(tags=["cotton"]))) == "no item with the product tag wool"
    several = C(collections=frozenset({"sale", "new"}))
    assert several.failed(cart(line(collections=["old"]))) == (
        "no item with a collection in new, sale"
    )


def test_an_empty_name_list_is_refused():
    with pytest.raises(ValueError, match="product_tags needs at least one"):
        C(product_tags=frozenset({" "}))


SEGMENT_TOML = """
[[segments]]
name = "wool"
product_tags = ["Wool"]
collections = ["winter-sale"]
skip = true
"""


def test_config_reads_product_conditions():
    text = SEGMENT_TOML + '[connector]\ntype = "shopify"\nshop = "x"\ntoken = "t"\n'
    text += "product_details = true\n"
    policy = load_config(None, text=text, env={}).policy
    [segment] = policy.segments
    assert segment.conditions.product_tags == frozenset({"wool"})
    assert segment.conditions.collections == frozenset({"winter-sale"})
    assert policy.segment_for(cart(line(tags=["wool"], collections=["Winter-Sale"])))[0] == "wool"


@pytest.mark.parametrize("connector", ["shopify", "woocommerce"])
def test_a_product_segment_needs_a_connector_that_reads_products(connector):
    table = (
        'type = "shopify"\nshop = "x"\ntoken = "t"\n'
        if connector == "shopify"
        else 'type = "woocommerce"\nurl = "https://shop.example"\nconsumer_key = "ck_1"\n'
        'consumer_secret = "cs_1"\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_config(None, text=SEGMENT_TOML + "[connector]\n" + table, env={})
    text = str(caught.value)
    assert "segments[1].product_tags" in text
    assert "segments[1].collections" in text
    assert "product_details = true" in text


def test_config_refuses_an_empty_tag():
    with pytest.raises(ConfigError, match=r"segments\[1\]\.product_tags"):
        load_config(None, text='[[segments]]\nname = "x"\nproduct_tags = [""]\n', env={})


# -- sold-out items -----------------------------------------------------------------------
def test_buyable_drops_sold_out_lines_and_their_value():
    checkout = cart(
        line("Blanket", "300", stock=True),
        replace(line("Scarf", "50", stock=False), quantity=2),
        line("Candle", "20", stock=None),  # unknown stock counts as buyable
        total="400",  # shipping on top of the lines' 420 - 100 off, say
    )
    shown = buyable(checkout)
    assert [li.title for li in shown.line_items] == ["Blanket", "Candle"]
    assert shown.total == Decimal("300")
    assert buyable(cart(line(stock=True))) == cart(line(stock=True))
    # never below zero, whatever the platform's total says
    assert buyable(cart(line(price="10", stock=False), total="5")).total == Decimal(0)


def test_free_shipping_is_counted_from_what_can_be_bought():
    shop = ShopInfo("Shop", free_shipping_threshold=Decimal("500"))
    checkout = cart(line("Blanket", "300", stock=True), line("Scarf", "250", stock=False))
    assert shop.free_shipping_remaining(checkout) is None
    assert shop.free_shipping_remaining(buyable(checkout)) == Decimal("200")


@pytest.mark.parametrize(
    ("stock", "sold_out_items", "skip_sold_out", "action"),
    [
        ((True, False), SoldOutItems.DROP, True, Action.SEND),
        ((True, False), SoldOutItems.SKIP_CART, True, Action.STOP),
        ((True, None), SoldOutItems.SKIP_CART, True, Action.SEND),
        ((True, True), SoldOutItems.SKIP_CART, True, Action.SEND),
        ((False, False), SoldOutItems.DROP, True, Action.STOP),  # the whole-cart rule stays
        ((False, False), SoldOutItems.SKIP_CART, False, Action.STOP),
    ],
)
def test_sold_out_items_policy(stock, sold_out_items, skip_sold_out, action):
    checkout = cart(*(line(f"item {i}", stock=s) for i, s in enumerate(stock)))
    policy = Policy(sold_out_items=sold_out_items, skip_sold_out=skip_sold_out)
    history = History(start_at=NOON - timedelta(days=1))
    decision = decide(checkout, history, policy, ("email",), NOON + timedelta(hours=1))
    assert decision.action == action
    if sold_out_items == SoldOutItems.SKIP_CART and action == Action.STOP and skip_sold_out:
        assert "skip_cart" in decision.reason


def test_config_reads_sold_out_items():
    assert load_config(None, text="", env={}).policy.sold_out_items == SoldOutItems.DROP
    text = '[policy]\nsold_out_items = "skip_cart"\n'
    assert load_config(None, text=text, env={}).policy.sold_out_items == SoldOutItems.SKIP_CART
    with pytest.raises(ConfigError, match=r"policy\.sold_out_items"):
        load_config(None, text='[policy]\nsold_out_items = "hide"\n', env={})


# -- images in messages -------------------------------------------------------------------
def context(checkout: Checkout) -> MessageContext:
    return MessageContext(checkout, ShopInfo("Nordlys"), "en", "https://go.example/r/abc")


def test_the_default_email_shows_each_items_image_in_html_only():
    checkout = cart(line("Wool blanket", image=IMG), line("Candle <b>"))
    content = TemplateRenderer().render("email", 1, context(checkout))
    assert content.html is not None
    assert f'<img src="{IMG}" alt="Wool blanket" width="64" height="64"' in content.html
    assert content.html.count("<img ") == 1  # the candle has no image, and no broken one
    assert "Candle &lt;b&gt;" in content.html
    assert IMG not in content.text
    plain = TemplateRenderer().render("email", 1, context(cart(line("Wool blanket"))))
    assert "<img " not in (plain.html or "")
    assert "Wool blanket" in plain.text


def test_an_image_alt_text_is_escaped():
    evil = cart(line('Blanket" onerror="x', image=IMG))
    html = TemplateRenderer().render("email", 1, context(evil)).html or ""
    assert 'alt="Blanket&#34; onerror=&#34;x"' in html


WHATSAPP = """{% block template %}cart_image{% endblock %}
{% block language %}en{% endblock %}
{% block header_image %}{{ image_url }}{% endblock %}
{% block parameters %}
{{ product }}
{% endblock %}
{% block button %}{{ link_path }}{% endblock %}
"""


def test_a_whatsapp_template_may_give_an_image_header(tmp_path):
    (tmp_path / "whatsapp").mkdir()
    (tmp_path / "whatsapp" / "1.en.j2").write_text(WHATSAPP)
    renderer = TemplateRenderer([tmp_path])
    checkout = cart(line("Candle"), line("Wool blanket", image=IMG))
    content = renderer.render("whatsapp", 1, context(checkout))
    assert content.header_image == IMG  # the first item that has a picture
    assert content.parameters == ("Candle",)
    with pytest.raises(TemplateError, match="header_image block must give an https"):
        renderer.render("whatsapp", 1, context(cart(line("Candle"))))
    default = TemplateRenderer().render("whatsapp", 1, context(checkout))
    assert default.header_image is None  # the default templates have no image header


# -- explain ------------------------------------------------------------------------------
def test_explain_shows_the_product_facts_and_why_a_product_segment_did_not_match(tmp_path):
    checkout = cart(
        line("Wool blanket", tags=["wool"], collections=["Winter sale"], stock=True),
        line("Silk scarf", tags=[], stock=False),
    )
    policy = Policy(
        segments=(Segment("gifts", C(collections=frozenset({"gifts"})), skip=True),),
        sold_out_items=SoldOutItems.SKIP_CART,
    )
    with SQLiteStore(tmp_path / "store.sqlite3") as store:
        store.start_at(NOON - timedelta(days=30))
        store.upsert_checkout(checkout, NOON)
        text = format_explanation(
            explain(checkout.id, store, policy, ["email"], NOON + timedelta(hours=1))
        )
    assert "item Wool blanket × 1: tags wool; collections Winter sale" in text
    assert "item Silk scarf × 1: sold out; tags none" in text
    assert "segment gifts: not matched (no item with the collection gifts)" in text
    assert "sold_out_items = skip_cart" in text


def test_preview_shows_a_whatsapp_image_header():
    content = Content(text="Hi", template="cart_image", language="en", header_image=IMG)
    body = preview_body(PreviewRow("whatsapp", 1, "en", "typical", "x", content))
    assert body[:2] == ["[cart_image (en)]", f"[image header: {IMG}]"]
