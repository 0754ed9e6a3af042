"""The WooCommerce connector against the fake WooCommerce server: volume, orders changing
in the middle of a walk, daylight-saving time, every way of authenticating, and a whole
recovery pass through the engine."""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, quote

import pytest
import requests

from cartrescue.clock import FrozenClock
from cartrescue.connectors.woocommerce import WooCommerceConnector
from cartrescue.demo import demo_checkouts
from cartrescue.engine import Recovery
from cartrescue.errors import ConnectorAuthError, ConnectorError
from cartrescue.models import BadCheckout, Checkout, DiscountOffer
from cartrescue.store.sqlite import SQLiteStore
from cartrescue_testing.fake_woocommerce import FakeWooCommerce, RecordedRequest
from cartrescue_testing.memory import MemoryChannel

T0 = datetime(2025, 3, 14, 12, 0, 0, tzinfo=UTC)


def connect(shop: FakeWooCommerce, **options: Any) -> WooCommerceConnector:
    options.setdefault("consent", ["email"])
    return WooCommerceConnector(shop.base_url, shop.consumer_key, shop.consumer_secret, **options)


def unpaid(shop: FakeWooCommerce, n: int, *, start: datetime, step: timedelta) -> list[int]:
    return shop.add_sample_orders(n, start=start, every=step)


def ids_of(items: Iterator[Checkout | BadCheckout]) -> list[str]:
    out = []
    for item in items:
        assert isinstance(item, Checkout), item
        out.append(item.id)
    return out


def test_5000_unpaid_orders_are_fetched_exactly_once_across_two_passes() -> None:
    clock = FrozenClock(T0)
    with FakeWooCommerce(clock=clock, timezone="Europe/Oslo") as shop:
        wanted = unpaid(shop, 5000, start=T0 - timedelta(days=2), step=timedelta(seconds=30))
        for i in range(150):  # noise the filters must keep out
            shop.add_order(status="processing", date_created_gmt=T0 - timedelta(hours=i))
            shop.add_order(created_via="admin", date_created_gmt=T0 - timedelta(hours=i))
        conn = connect(shop, clock=clock)

        watermark = clock()
        first = ids_of(conn.abandoned_checkouts(T0 - timedelta(days=3)))
        assert len(first) == len(set(first)) == 5000
        assert set(first) == {str(i) for i in wanted}
        requests_first = len(shop.requests)
        assert requests_first <= 5000 // 99 + 2  # page by page, ~100 orders a request

        clock.advance(timedelta(minutes=15))
        changed = random.Random(7).sample(wanted, 300)
        for order_id in changed[:200]:
            shop.update_order(order_id, billing={"phone": "+47 912 00 000"})
        for order_id in changed[200:]:
            shop.pay_order(order_id)
        new = unpaid(shop, 40, start=clock(), step=timedelta(seconds=1))

        second = list(conn.abandoned_checkouts(watermark))
        second_ids = ids_of(iter(second))
        assert len(second_ids) == len(set(second_ids))
        assert set(second_ids) == {str(i) for i in changed[:200] + new}
        updated = next(c for c in second if c.id == str(changed[0]))
        assert updated.customer is not None
        assert updated.customer.phone == "+4791200000"


def test_orders_changing_in_the_middle_of_a_walk_are_not_lost() -> None:
    clock = FrozenClock(T0)
    with FakeWooCommerce(clock=clock) as shop:
        wanted = unpaid(shop, 600, start=T0 - timedelta(hours=10), step=timedelta(seconds=50))
        paid_mid_walk = set(wanted[:120:3])
        touched_mid_walk = set(wanted[1:120:3])
        calls = Counter[str]()

        def busy_shop(request: RecordedRequest) -> None:
            calls[request.path] += 1
            if request.path.endswith("/orders") and calls[request.path] == 3:
                clock.advance(timedelta(seconds=30))
                for order_id in paid_mid_walk:  # leave the result, ahead of the cursor
                    shop.pay_order(order_id)
                for order_id in touched_mid_walk:
                    shop.update_order(order_id, customer_note="please ring the bell")

        shop.before_request = busy_shop
        got = ids_of(
            connect(shop, per_page=50, clock=clock).abandoned_checkouts(T0 - timedelta(days=1))
        )
        counts = Counter(got)
        stayed = {str(i) for i in wanted if i not in paid_mid_walk}
        assert stayed <= set(got)  # nobody skipped, though 40 orders left the result
        assert set(got) - stayed <= {str(i) for i in paid_mid_walk}
        # orders changed mid-walk come again in their new state; nothing else twice
        assert {i for i, n in counts.items() if n > 1} <= {str(i) for i in touched_mid_walk}


def test_plain_pages_would_have_lost_orders_here() -> None:
    """The same busy shop read the naive way (page=1..X-WP-TotalPages) skips orders: this
    is what the keyset walk above is for."""
    clock = FrozenClock(T0)
    with FakeWooCommerce(clock=clock) as shop:
        wanted = unpaid(shop, 300, start=T0 - timedelta(hours=5), step=timedelta(seconds=50))
        import requests

        seen: list[int] = []
        session = requests.Session()
        auth = connect(shop, clock=clock).client.auth
        for page in range(1, 7):
            batch = session.get(
                f"{shop.rest_url}/wc/v3/orders",
                params={
                    "status": "pending,failed",
                    "per_page": 50,
                    "page": page,
                    "orderby": "id",
                    "order": "asc",
                },
                auth=auth,
                timeout=10,
            ).json()
            seen += [o["id"] for o in batch]
            if page == 2:
                for order_id in wanted[:10]:
                    shop.pay_order(order_id)
        assert len(set(wanted[10:]) - set(seen)) == 10


def test_the_hour_the_clocks_go_back_loses_nothing() -> None:
    # Oslo falls back at 01:00 UTC on 2025-10-26: local 02:00-02:59 happens twice.
    fold = datetime(2025, 10, 26, 0, 0, tzinfo=UTC)
    clock = FrozenClock(fold + timedelta(hours=3))
    with FakeWooCommerce(clock=clock, timezone="Europe/Oslo") as shop:
        wanted = []
        for minute in range(0, 200, 2):
            at = fold + timedelta(minutes=minute)
            wanted.append(shop.add_order(date_created_gmt=at, date_modified_gmt=at)["id"])
        got = ids_of(
            connect(shop, per_page=5, clock=clock).abandoned_checkouts(fold - timedelta(hours=1))
        )
        assert sorted(got) == sorted(str(i) for i in wanted)
        assert len(got) == len(set(got))


PERMALINKS = {"pretty": "/wp-json", "plain": "/?rest_route="}


@pytest.mark.parametrize("permalinks", ["pretty", "plain"])
@pytest.mark.parametrize(
    ("fake", "url_scheme", "options"),
    [
        ({}, "http", {}),  # plain HTTP: OAuth 1.0a
        ({"is_ssl": True}, "https", {}),  # Basic auth
        ({"is_ssl": True}, "https", {"query_string_auth": True}),
        ({"is_ssl": True, "drops_authorization": True}, "https", {"query_string_auth": True}),
    ],
)
def test_every_way_of_authenticating(
    fake: dict[str, Any], url_scheme: str, options: dict[str, Any], permalinks: str
) -> None:
    clock = FrozenClock(T0)
    with FakeWooCommerce(clock=clock, **fake) as shop:
        [order_id] = unpaid(shop, 1, start=T0 - timedelta(hours=2), step=timedelta(0))
        url = shop.base_url if url_scheme == "http" else "https://shop.example"
        conn = WooCommerceConnector(
            url,
            shop.consumer_key,
            shop.consumer_secret,
            base_url=shop.base_url + PERMALINKS[permalinks],
            consent=["email"],
            clock=clock,
            **options,
        )
        [checkout] = ids_of(conn.abandoned_checkouts(None))
        assert checkout == str(order_id)
        [full] = [c for c in conn.abandoned_checkouts(None) if isinstance(c, Checkout)]
        assert conn.find_purchase(full) is None  # GET orders/<id>, signed
        conn.create_discount(full, DiscountOffer(Decimal(10), 3600))  # POST, signed
        assert len(shop.coupons) == 1
        sent = shop.requests[-1]
        assert ("rest_route" in sent.query) == (permalinks == "plain")
        assert ("oauth_signature" in sent.query) == (url_scheme == "http")


def signed_by_connector(shop: FakeWooCommerce, clock: FrozenClock, permalinks: str) -> str:
    """The query string of a request the connector sent to the shop over plain HTTP."""
    conn = connect(shop, clock=clock, base_url=shop.base_url + PERMALINKS[permalinks])
    assert ids_of(conn.abandoned_checkouts(None)) == []
    return shop.requests[-1].raw_query


def replay(shop: FakeWooCommerce, permalinks: str, query: str) -> tuple[int, str]:
    path = "/wp-json/wc/v3/orders" if permalinks == "pretty" else "/"
    response = requests.get(f"{shop.base_url}{path}?{query}", timeout=10)
    return response.status_code, response.json().get("message", "")


@pytest.mark.parametrize("permalinks", ["pretty", "plain"])
def test_a_tampered_signature_or_parameter_is_refused(permalinks: str) -> None:
    clock = FrozenClock(T0)
    with FakeWooCommerce(clock=clock) as shop:
        query = signed_by_connector(shop, clock, permalinks)
        signature = dict(parse_qsl(query))["oauth_signature"]
        flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
        tampered = query.replace(quote(signature, safe=""), quote(flipped, safe=""))
        assert tampered != query
        refused = (401, "Invalid signature - provided signature does not match.")
        assert replay(shop, permalinks, tampered) == refused
        widened = query.replace("status=pending%2Cfailed", "status=any")
        assert widened != query
        assert replay(shop, permalinks, widened) == refused


@pytest.mark.parametrize("permalinks", ["pretty", "plain"])
def test_a_replayed_request_is_refused(permalinks: str) -> None:
    clock = FrozenClock(T0)
    with FakeWooCommerce(clock=clock) as shop:
        query = signed_by_connector(shop, clock, permalinks)
        assert replay(shop, permalinks, query) == (
            401,
            "Invalid nonce - nonce has already been used.",
        )


def test_a_signature_16_minutes_old_is_refused_and_the_clock_named() -> None:
    with FakeWooCommerce(clock=FrozenClock(T0)) as shop:
        late = connect(shop, clock=FrozenClock(T0 - timedelta(minutes=14)))
        assert ids_of(late.abandoned_checkouts(T0 - timedelta(days=1))) == []
        stale = connect(shop, clock=FrozenClock(T0 - timedelta(minutes=16)))
        with pytest.raises(ConnectorAuthError, match=r"'Invalid timestamp\.'.*clock"):
            list(stale.abandoned_checkouts(T0 - timedelta(days=1)))
        ahead = connect(shop, clock=FrozenClock(T0 + timedelta(minutes=16)))
        with pytest.raises(ConnectorAuthError, match="clock"):
            list(ahead.abandoned_checkouts(T0 - timedelta(days=1)))


def test_oauth_signs_for_the_home_url_when_the_rest_root_is_elsewhere() -> None:
    """A proxy (base_url) in front of the shop: WooCommerce signs with its home URL, so the
    connector signs for ``url``; a ``url`` that is not the shop's home is refused."""
    clock = FrozenClock(T0)
    with FakeWooCommerce(clock=clock) as shop:
        right = connect(
            shop, clock=clock, base_url=shop.base_url.replace("127.0.0.1", "localhost") + "/wp-json"
        )
        assert ids_of(right.abandoned_checkouts(None)) == []
        wrong = WooCommerceConnector(
            "http://www.shop.example",
            shop.consumer_key,
            shop.consumer_secret,
            base_url=shop.rest_url,
            consent=["email"],
            clock=clock,
        )
        with pytest.raises(ConnectorAuthError, match="Settings → General"):
            list(wrong.abandoned_checkouts(None))


def test_a_server_dropping_the_authorization_header_gets_the_query_string_auth_fix() -> None:
    with FakeWooCommerce(is_ssl=True, drops_authorization=True) as shop:
        conn = WooCommerceConnector(
            "https://shop.example", shop.consumer_key, shop.consumer_secret, base_url=shop.rest_url
        )
        with pytest.raises(ConnectorAuthError, match="query_string_auth = true"):
            list(conn.abandoned_checkouts(None))
        assert any("query_string_auth" in p.message for p in conn.check())


def test_a_wrong_secret_over_oauth_is_refused() -> None:
    with FakeWooCommerce() as shop:
        conn = WooCommerceConnector(shop.base_url, shop.consumer_key, "cs_wrong", consent=["email"])
        with pytest.raises(ConnectorAuthError, match="signature"):
            list(conn.abandoned_checkouts(None))


def test_discounts_lookups_and_time_zone_against_the_fake() -> None:
    clock = FrozenClock(T0)
    with FakeWooCommerce(clock=clock, timezone="America/New_York") as shop:
        [abandoned] = unpaid(shop, 1, start=T0 - timedelta(hours=2), step=timedelta(0))
        conn = connect(shop, clock=clock)
        [checkout] = list(conn.abandoned_checkouts(None))
        assert conn.find_purchase(checkout) is None
        discount = conn.create_discount(checkout, DiscountOffer(Decimal(15), 86400))
        [coupon] = shop.coupons
        assert coupon["code"] == discount.code.lower()
        assert coupon["email_restrictions"] == ["buyer0@example.com"]
        assert coupon["date_expires_gmt"] == "2025-03-15T12:00:00"
        assert conn.shop_timezone() == "America/New_York"

        clock.advance(timedelta(hours=1))
        other = shop.add_order(billing={"email": "BUYER0@example.com"}, status="pending")
        shop.pay_order(other["id"])
        purchase = conn.find_purchase(checkout)
        assert purchase is not None
        assert (purchase.order_id, purchase.same_checkout) == (str(other["id"]), False)

        shop.pay_order(abandoned)
        purchase = conn.find_purchase(checkout)
        assert purchase is not None
        assert (purchase.order_id, purchase.same_checkout) == (str(abandoned), True)


def test_a_whole_recovery_pass_through_the_engine() -> None:
    clock = FrozenClock(T0)
    optins = {"sms": "_wc_other/nordlys/sms-optin", "email": "_wc_other/nordlys/news"}
    with FakeWooCommerce(clock=clock, timezone="Europe/Oslo") as shop:
        shop.add_checkouts(demo_checkouts(T0), consent_meta=optins)
        conn = connect(shop, consent=None, consent_meta=optins, clock=clock)
        sms, email = MemoryChannel("sms"), MemoryChannel("email")
        with SQLiteStore(":memory:") as store:
            store.start_at(T0 - timedelta(days=3))
            recovery = Recovery(conn, [sms, email], store, clock=clock)
            report = recovery.run()
            assert report.ok, report.summary()
            kari = next(m for m in sms.sent if m.checkout_id == "1001")
            assert kari.to == "+4791234567"
            assert f"{shop.base_url}/checkout/order-pay/1001/" in kari.text or kari.metadata

            shop.pay_order(1001)
            clock.advance(timedelta(hours=24))
            report = recovery.run()
            assert report.ok, report.summary()
            assert report.counts["converted"] >= 1
            assert all(m.checkout_id != "1001" for m in sms.sent[1:] + email.sent)


def test_cartrescue_doctor_reports_the_connector_plainly() -> None:
    from cartrescue.config import load_config
    from cartrescue.doctor import doctor_problems

    with FakeWooCommerce(is_ssl=True, drops_authorization=True) as shop:
        text = f"""
[connector]
type = "woocommerce"
url = "https://shop.example"
base_url = "{shop.rest_url}"
consumer_key_env = "WC_KEY"
consumer_secret_env = "WC_SECRET"

[channels.sms]
type = "cartrescue_testing:MemoryChannel"

[store]
path = ":memory:"
"""
        env = {"WC_KEY": shop.consumer_key, "WC_SECRET": shop.consumer_secret}
        problems = doctor_problems(load_config(None, text=text, env=env))
        messages = [p.message for p in problems if p.area == "connector"]
        assert any("no consent configured: nothing will be sent" in m for m in messages)
        assert any("query_string_auth = true" in m for m in messages)
        assert all(shop.consumer_secret not in p.message + p.fix for p in problems)
        assert {r.method for r in shop.requests} == {"GET"}  # doctor changes nothing


def test_bulk_purchase_checks_say_what_one_by_one_checks_say_in_few_requests() -> None:
    clock = FrozenClock(T0)
    with FakeWooCommerce(clock=clock) as shop:
        ids = unpaid(shop, 150, start=T0 - timedelta(hours=20), step=timedelta(minutes=1))
        conn = connect(shop, clock=clock)
        checkouts = [c for c in conn.abandoned_checkouts(None) if isinstance(c, Checkout)]
        shop.pay_order(ids[3], at=T0 - timedelta(hours=1))  # the order itself, paid since
        later = T0 - timedelta(minutes=30)
        shop.add_order(  # a later paid order by the same email
            status="completed",
            billing={"email": "BUYER10@example.com"},
            date_created_gmt=later,
            date_paid_gmt=later,
        )
        shop.add_order(status="pending", billing={"email": "buyer11@example.com"})  # unpaid
        shop.update_order(ids[120], customer_id=77)
        shop.add_order(
            status="processing", customer_id=77, date_created_gmt=later, date_paid_gmt=later
        )
        early = T0 - timedelta(days=3)  # paid before buyer 12 abandoned: not a purchase since
        shop.add_order(
            status="completed",
            billing={"email": "buyer12@example.com"},
            date_created_gmt=early,
            date_paid_gmt=early,
        )
        gone = dataclasses.replace(checkouts[0], id="999999")
        asked = [*checkouts, gone]
        one_by_one: dict[str, object] = {}
        for checkout in asked:
            try:
                one_by_one[checkout.id] = conn.find_purchase(checkout)
            except ConnectorError as err:
                one_by_one[checkout.id] = str(err)
        before = len(shop.requests)
        bulk = conn.find_purchases(asked)
        requests_made = len(shop.requests) - before
    assert {k: str(v) if isinstance(v, ConnectorError) else v for k, v in bulk.items()} == (
        one_by_one
    )
    bought = {k for k, v in bulk.items() if v is not None and not isinstance(v, ConnectorError)}
    assert bought == {str(ids[3]), str(ids[10]), str(ids[120])}
    assert "no longer exists" in str(bulk["999999"])
    # per 100 checkouts: the orders themselves, and the orders since (one page or two);
    # the one that no longer exists is asked about alone
    assert requests_made <= 2 * (1 + 2) + 1
