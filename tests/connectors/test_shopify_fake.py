"""ShopifyConnector against the loopback FakeShopify: pagination, limits, capabilities."""

import dataclasses
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from cartrescue.config import load_config
from cartrescue.connectors.shopify import ShopifyConnector
from cartrescue.demo import demo_checkouts
from cartrescue.errors import ConnectorAuthError
from cartrescue.models import BadCheckout, Checkout, Customer, DiscountOffer, LineItem
from cartrescue_testing.fake_shopify import FakeShopify, SimulatedTime

START = datetime(2026, 11, 1, tzinfo=UTC)


def make_checkouts(count, *, start=START, line_items=1):
    out = []
    for n in range(count):
        at = start + timedelta(seconds=30 * n)
        out.append(
            Checkout(
                id=str(100000 + n),
                abandoned_at=at,
                updated_at=at + timedelta(minutes=5),
                recovery_url=f"https://fake-shop.myshopify.com/1/checkouts/ac/t{n}/recover?key=k{n}",
                currency="USD",
                total=Decimal("10.00") * line_items,
                line_items=tuple(
                    LineItem(f"Item {i}", 1, Decimal("10.00"), variant="M", sku=f"SKU{i}")
                    for i in range(line_items)
                ),
                customer=Customer(
                    first_name="Buyer",
                    last_name=str(n),
                    email=f"buyer{n}@example.com",
                    phone="+14155552671",
                    locale="en",
                    email_consent=n % 2 == 0,
                    sms_consent=n % 3 == 0,
                ),
                name=f"#{100000 + n}",
            )
        )
    return out


def connect(fake, **kw):
    return ShopifyConnector(fake.shop, fake.token, base_url=fake.base_url, **kw)


def test_ten_thousand_checkouts_through_a_throttled_bucket_without_a_failed_request():
    checkouts = make_checkouts(10_000)
    # Shopify's cap of 1,000 points a query, a bucket of that size, and a fast restore rate:
    # every page drains most of the bucket, so the connector must wait before the next one.
    with FakeShopify.from_checkouts(checkouts, bucket_size=1000, restore_rate=50_000) as fake:
        shop = connect(fake)
        seen = []
        for item in shop.abandoned_checkouts(None):
            assert isinstance(item, Checkout)
            seen.append(item.id)
        assert len(seen) == len(set(seen)) == 10_000
        assert fake.failed == 0
        assert fake.stats["throttled"] == 0
        assert shop.throttle.waited > 0
        assert fake.stats["graphql"] == -(-10_000 // shop.page_size())


def test_pacing_reaches_the_restore_rate_on_a_standard_plan_bucket():
    time = SimulatedTime()
    checkouts = make_checkouts(1500, line_items=3)
    with FakeShopify.from_checkouts(
        checkouts, bucket_size=2000, restore_rate=100, now=time.now
    ) as fake:
        shop = connect(fake, sleep=time.sleep, monotonic=time.now)
        started = time.now()
        assert sum(1 for _ in shop.abandoned_checkouts(None)) == 1500
        elapsed = time.now() - started
        assert fake.failed == 0
    # the restore rate allows no faster than: every point spent beyond the full bucket at
    # the start, restored at 100 a second
    bound = (fake.points_spent - 2000) / 100
    assert bound / elapsed >= 0.9
    assert elapsed >= bound


@pytest.mark.parametrize("status", [200, 429])
def test_a_throttled_answer_is_waited_out_and_retried(status):
    time = SimulatedTime()
    with FakeShopify.from_checkouts(
        make_checkouts(300), restore_rate=100, throttled_status=status, now=time.now
    ) as fake:
        first = connect(fake, sleep=time.sleep, monotonic=time.now)
        list(first.abandoned_checkouts(None))
        # a second process knows nothing of the bucket the first one drained
        second = connect(fake, sleep=time.sleep, monotonic=time.now)
        assert sum(1 for _ in second.abandoned_checkouts(None)) == 300
        assert fake.stats["throttled"] >= 1
        assert second.graphql.throttled == fake.stats["throttled"]


def test_rest_pages_with_page_info_and_stays_under_the_call_limit():
    time = SimulatedTime()
    with FakeShopify.from_checkouts(
        make_checkouts(2600), rest_bucket_size=4, rest_leak_rate=2, now=time.now
    ) as fake:
        shop = connect(fake, api="rest", sleep=time.sleep, monotonic=time.now)
        ids = [c.id for c in shop.abandoned_checkouts(START + timedelta(hours=1))]
        assert ids == [str(100000 + n) for n in range(110, 2600)]
        assert fake.stats["rest"] == 10
        assert fake.failed == 0
        assert time.slept > 0


def test_graphql_and_rest_agree_on_the_demo_shop():
    items = demo_checkouts(datetime(2026, 11, 24, 12, tzinfo=UTC))
    with FakeShopify.from_checkouts(items, timezone="Europe/Oslo", currency="NOK") as fake:
        graphql = list(connect(fake).abandoned_checkouts(None))
        rest = list(connect(fake, api="rest").abandoned_checkouts(None))
        legacy = list(connect(fake, api_version="2024-10").abandoned_checkouts(None))
    assert graphql == rest == legacy
    assert len(graphql) == len(items)
    bad = [i for i in graphql if isinstance(i, BadCheckout)]
    assert [b.id for b in bad] == ["1009"]
    by_id = {i.id: i for i in items}
    kari = next(i for i in graphql if i.id == "1001")
    assert kari.customer is not None and kari.customer.id  # every Shopify customer has one
    assert replace(kari, customer=replace(kari.customer, id=None)) == by_id["1001"]


def test_watermark_filters_updated_checkouts():
    with FakeShopify.from_checkouts(make_checkouts(50)) as fake:
        since = START + timedelta(seconds=30 * 40)
        ids = [c.id for c in connect(fake).abandoned_checkouts(since)]
    # updated_at is 5 minutes after creation: strictly later than the watermark
    assert ids == [str(100000 + n) for n in range(31, 50)]


def test_purchase_discount_and_timezone_through_the_fake():
    checkouts = make_checkouts(3)
    with FakeShopify.from_checkouts(checkouts, timezone="Europe/Oslo") as fake:
        shop = connect(fake, clock=lambda: START + timedelta(days=1))
        assert shop.shop_timezone() == "Europe/Oslo"
        assert shop.find_purchase(checkouts[0]) is None

        fake.add_order(email="buyer1@example.com", created_at=START + timedelta(hours=2))
        purchase = shop.find_purchase(checkouts[1])
        assert purchase is not None
        assert purchase.same_checkout is False
        assert purchase.placed_at == START + timedelta(hours=2)

        fake.complete_checkout(checkouts[2].id, START + timedelta(hours=3))
        purchase = shop.find_purchase(checkouts[2])
        assert purchase is not None
        assert purchase.same_checkout is True

        discount = shop.create_discount(checkouts[0], DiscountOffer(Decimal("10"), 3600))
        assert fake.discounts[0]["code"] == discount.code
        assert fake.discounts[0]["usageLimit"] == 1
        assert fake.discounts[0]["context"] == {"all": "ALL"}
        assert discount.url.endswith(f"&discount={discount.code}")
        assert fake.failed == 0


def test_doctor_check_against_the_fake():
    with FakeShopify(scopes=["read_orders"]) as fake:
        problems = connect(fake).check()
        assert {p.severity for p in problems} == {"error", "warning"}
        assert any("read_customers" in p.message for p in problems)
    with FakeShopify() as fake:
        assert connect(fake).check() == []
        wrong = ShopifyConnector(fake.shop, "shpat_wrong", base_url=fake.base_url)
        problems = wrong.check()
        assert len(problems) == 1
        assert "refused" in problems[0].message


def test_missing_customer_scope_is_an_auth_error():
    fake = FakeShopify.from_checkouts(make_checkouts(2), scopes=["read_orders"])
    with fake, pytest.raises(ConnectorAuthError, match="read_customers"):
        list(connect(fake).abandoned_checkouts(None))


def test_built_from_cartrescue_toml_through_the_entry_point():
    with FakeShopify.from_checkouts(make_checkouts(2)) as fake:
        config = load_config(
            None,
            text=f"""
[connector]
type = "shopify"
shop = "fake-shop"
token_env = "SHOPIFY_ADMIN_TOKEN"
api = "rest"
base_url = "{fake.base_url}"
""",
            env={"SHOPIFY_ADMIN_TOKEN": fake.token},
        )
        shop = config.connector()
        assert isinstance(shop, ShopifyConnector)
        assert shop.api == "rest"
        assert len(list(shop.abandoned_checkouts(None))) == 2


def test_bulk_purchase_checks_say_what_one_by_one_checks_say_in_one_query_per_50():
    checkouts = make_checkouts(120)
    phone_only = Checkout(
        id="200001",
        abandoned_at=START,
        updated_at=START,
        recovery_url="https://fake-shop.myshopify.com/1/checkouts/ac/p/recover?key=p",
        currency="USD",
        total=Decimal("5.00"),
        line_items=(LineItem("Mug", 1, Decimal("5.00")),),
        customer=Customer(phone="+4791234567", sms_consent=True),
    )
    with FakeShopify.from_checkouts([*checkouts, phone_only]) as fake:
        for n in (1, 50, 99):
            fake.add_order(email=f"buyer{n}@example.com", created_at=START + timedelta(days=1))
        fake.add_order(email="buyer7@example.com", created_at=START - timedelta(days=1))  # before
        fake.add_order(email=None, phone="+4791234567", created_at=START + timedelta(hours=1))
        for n in (3, 60):
            fake.complete_checkout(checkouts[n].id, START + timedelta(hours=3))
        unknown = dataclasses.replace(phone_only, id="999999")
        asked = [*checkouts, phone_only, unknown]
        shop = connect(fake, clock=lambda: START + timedelta(days=2))
        one_by_one = {c.id: shop.find_purchase(c) for c in asked}
        before = fake.stats["graphql"]
        bulk = shop.find_purchases(asked)
        assert fake.stats["graphql"] - before == 3  # 122 checkouts, 50 a query
    assert bulk == one_by_one
    bought = {i for i, p in bulk.items() if p is not None}
    assert bought == {"100001", "100050", "100099", "100003", "100060", "200001"}
    assert bulk["100003"].same_checkout and not bulk["100001"].same_checkout


def test_bulk_purchase_query_cost_is_what_the_fake_computes():
    with FakeShopify.from_checkouts(make_checkouts(50)) as fake:
        checkouts = list(connect(fake).abandoned_checkouts(None))
        shop = connect(fake)
        spent = fake.points_spent
        shop.find_purchases(checkouts)
        # requested: 2 + 3 per checkout node, 2 + 3 per order node (100), 1 per abandonment;
        # no orders exist, so fewer points are spent
        assert 0 < fake.points_spent - spent <= (2 + 3 * 50) + (2 + 3 * 100) + 50


def test_a_buyer_the_bulk_order_search_cut_off_is_asked_about_alone():
    checkouts = make_checkouts(3)
    with FakeShopify.from_checkouts(checkouts) as fake:
        for n in range(120):  # more orders since than one bulk query reads, all by buyer 0
            at = START + timedelta(hours=1, seconds=n)
            fake.add_order(email="buyer0@example.com", created_at=at)
        fake.add_order(email="buyer2@example.com", created_at=START + timedelta(hours=5))
        shop = connect(fake, clock=lambda: START + timedelta(days=1))
        before = fake.stats["graphql"]
        bulk = shop.find_purchases(checkouts)
        assert fake.stats["graphql"] - before == 1 + 2  # buyers 1 and 2 asked about alone
        assert bulk == {c.id: shop.find_purchase(c) for c in checkouts}
    assert bulk["100002"] is not None and bulk["100002"].placed_at == START + timedelta(hours=5)
    assert bulk["100001"] is None
