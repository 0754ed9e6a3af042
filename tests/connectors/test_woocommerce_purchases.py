"""WooCommerce connector: bought since?, discount codes and doctor checks, with ``responses``."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import requests
import responses

from cartrescue.errors import ConnectorAuthError, ConnectorError
from cartrescue.models import Checkout, Customer, DiscountOffer

from .test_woocommerce_helpers import (
    COUPONS,
    OPTIN,
    ORDERS,
    SECRET,
    connector,
    error,
    fixture,
    order,
    params,
)

ABANDONED = datetime(2025, 3, 14, 9, 2, 11, tzinfo=UTC)
NOW = datetime(2025, 3, 15, 12, 0, 0, tzinfo=UTC)


def checkout(email: str | None = "Kari.Nordmann@example.no") -> Checkout:
    return Checkout(
        id="4512",
        abandoned_at=ABANDONED,
        updated_at=ABANDONED,
        recovery_url="https://shop.example/checkout/order-pay/4512/",
        currency="NOK",
        total=Decimal("1538.00"),
        customer=Customer(first_name="Kari", email=email),
    )


def own(**changes: object) -> None:
    responses.get(f"{ORDERS}/4512", json=order(**changes))


def search_result(orders: list[object]) -> None:
    responses.get(
        ORDERS, json=orders, headers={"X-WP-TotalPages": "1", "X-WP-Total": str(len(orders))}
    )


# -- bought since? ------------------------------------------------------------------------
@responses.activate
def test_the_order_itself_paid_is_a_purchase_of_the_same_checkout() -> None:
    own(status="processing", date_paid_gmt="2025-03-14T11:30:00")
    purchase = connector().find_purchase(checkout())
    assert purchase is not None
    assert purchase.same_checkout is True
    assert purchase.order_id == "4512"
    assert purchase.placed_at == datetime(2025, 3, 14, 11, 30, tzinfo=UTC)
    assert (purchase.total, purchase.currency) == (Decimal("1538.00"), "NOK")
    assert len(responses.calls) == 1


@responses.activate
def test_a_later_paid_order_by_the_same_email_is_converted_elsewhere() -> None:
    own()
    search_result(
        [
            order(4600, status="processing", billing={"email": "joanne.kari.nordmann@example.no"}),
            order(4601, status="pending"),
            order(4602, status="completed", date_paid_gmt="2025-03-14T15:00:00", total="980.00"),
        ]
    )
    purchase = connector().find_purchase(checkout())
    assert purchase is not None
    assert (purchase.order_id, purchase.same_checkout) == ("4602", False)
    assert purchase.placed_at == datetime(2025, 3, 14, 15, 0, tzinfo=UTC)
    assert purchase.total == Decimal("980.00")
    sent = params(responses.calls[1])
    assert sent["search"] == "Kari.Nordmann@example.no"
    assert sent["after"] == "2025-03-14T09:02:10"  # created after the abandonment, in GMT
    assert (sent["dates_are_gmt"], sent["status"], sent["orderby"], sent["order"]) == (
        "true",
        "any",
        "date",
        "asc",
    )


@responses.activate
def test_date_paid_on_another_status_counts_as_bought() -> None:
    own()
    search_result([order(4700, status="on-hold", date_paid_gmt="2025-03-14T16:00:00")])
    purchase = connector().find_purchase(checkout())
    assert purchase is not None
    assert (purchase.order_id, purchase.same_checkout) == ("4700", False)


@responses.activate
def test_no_paid_order_means_no_purchase() -> None:
    own()
    search_result([order(4512), order(4601, status="failed"), order(4602, status="cancelled")])
    assert connector().find_purchase(checkout()) is None


@responses.activate
def test_a_logged_in_customer_is_also_looked_up_by_account() -> None:
    own(customer_id=77, billing={"email": ""})
    search_result(
        [order(4800, status="completed", customer_id=77, billing={"email": "work@corp.example"})]
    )
    purchase = connector().find_purchase(checkout())
    assert purchase is not None
    assert purchase.order_id == "4800"
    assert params(responses.calls[-1])["customer"] == "77"


@responses.activate
def test_without_email_or_account_only_the_order_itself_is_asked() -> None:
    own(billing={"email": ""})
    assert connector().find_purchase(checkout(email=None)) is None
    assert len(responses.calls) == 1


@responses.activate
def test_a_deleted_order_holds_the_message() -> None:
    responses.get(f"{ORDERS}/4512", json=error("order_invalid_id"), status=404)
    with pytest.raises(ConnectorError, match="order 4512 no longer exists"):
        connector().find_purchase(checkout())


@responses.activate
def test_an_unreachable_shop_raises_so_the_engine_holds() -> None:
    responses.get(f"{ORDERS}/4512", body=requests.ConnectionError("down"))
    with pytest.raises(ConnectorError):
        connector(attempts=2).find_purchase(checkout())


# -- discount codes -----------------------------------------------------------------------
def coupon_echo(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
    body = json.loads(request.body or b"{}")
    created = {**fixture("coupon_created.json"), **body, "code": body["code"].lower()}
    return 201, {}, json.dumps(created)


@responses.activate
def test_create_discount_posts_a_single_use_percent_coupon() -> None:
    responses.add_callback(responses.POST, COUPONS, callback=coupon_echo)
    offer = DiscountOffer(Decimal("12.5"), 48 * 3600)
    discount = connector(clock=lambda: NOW).create_discount(checkout(), offer)
    sent = json.loads(responses.calls[0].request.body)
    assert re.fullmatch(r"BACK-[A-HJ-KM-NP-Z2-9]{8}", sent["code"])
    assert sent == {
        "code": sent["code"],
        "discount_type": "percent",
        "amount": "12.5",
        "individual_use": True,
        "usage_limit": 1,
        "usage_limit_per_user": 1,
        "date_expires_gmt": "2025-03-17T12:00:00",
        "description": "cartrescue: abandoned order #4512",
        "email_restrictions": ["Kari.Nordmann@example.no"],
    }
    assert discount.code == sent["code"]
    assert discount.percent == Decimal("12.5")
    assert discount.expires_at == datetime(2025, 3, 17, 12, 0, tzinfo=UTC)
    assert discount.url is None  # core WooCommerce has no link that applies a coupon


@responses.activate
def test_a_code_that_exists_is_replaced_by_a_new_one() -> None:
    responses.post(COUPONS, json=error("coupon_exists"), status=400)
    responses.add_callback(responses.POST, COUPONS, callback=coupon_echo)
    discount = connector().create_discount(checkout(), DiscountOffer(Decimal(10), 3600))
    first, second = (json.loads(c.request.body)["code"] for c in responses.calls)
    assert first != second
    assert discount.code == second


@responses.activate
def test_without_an_email_the_coupon_is_not_restricted() -> None:
    responses.add_callback(responses.POST, COUPONS, callback=coupon_echo)
    connector(coupon_prefix="").create_discount(
        checkout(email=None), DiscountOffer(Decimal(10), 3600)
    )
    sent = json.loads(responses.calls[0].request.body)
    assert "email_restrictions" not in sent
    assert re.fullmatch(r"[A-Z2-9]{8}", sent["code"])


@responses.activate
def test_a_read_only_key_cannot_create_coupons_and_says_why() -> None:
    responses.post(COUPONS, json=error("no_write"), status=401)
    with pytest.raises(ConnectorAuthError, match="Read/Write") as info:
        connector().create_discount(checkout(), DiscountOffer(Decimal(10), 3600))
    assert SECRET not in str(info.value)


@responses.activate
def test_a_5xx_on_create_is_not_retried_but_a_coupon_that_was_made_is_used() -> None:
    responses.post(COUPONS, status=502, body="Bad Gateway")

    def lookup(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        code = params_of(request)["code"]
        return (
            200,
            {"X-WP-Total": "1"},
            json.dumps([{**fixture("coupon_created.json"), "code": code.lower()}]),
        )

    responses.add_callback(responses.GET, COUPONS, callback=lookup)
    discount = connector().create_discount(checkout(), DiscountOffer(Decimal(10), 3600))
    posts = [c for c in responses.calls if c.request.method == "POST"]
    assert len(posts) == 1
    assert discount.code == json.loads(posts[0].request.body)["code"]


@responses.activate
def test_a_5xx_on_create_without_a_coupon_raises() -> None:
    responses.post(COUPONS, status=503)
    responses.get(COUPONS, json=[], headers={"X-WP-Total": "0"})
    with pytest.raises(ConnectorError) as info:
        connector().create_discount(checkout(), DiscountOffer(Decimal(10), 3600))
    assert info.value.status == 503


def params_of(request: requests.PreparedRequest) -> dict[str, str]:
    from urllib.parse import parse_qs, urlsplit

    return {k: v[-1] for k, v in parse_qs(urlsplit(request.url or "").query).items()}


# -- doctor -------------------------------------------------------------------------------
@responses.activate
def test_check_says_plainly_that_without_consent_nothing_is_sent() -> None:
    responses.get(ORDERS, json=[], headers={"X-WP-TotalPages": "0"})
    problems = connector(consent_meta=None).check()
    assert [(p.area, p.severity) for p in problems] == [("connector", "error")]
    assert "no consent configured: nothing will be sent" in problems[0].message
    assert "consent_meta" in problems[0].fix
    assert "consent = [" in problems[0].fix


@responses.activate
def test_check_is_clean_for_a_working_shop() -> None:
    responses.get(ORDERS, json=[order()], headers={"X-WP-TotalPages": "1"})
    assert connector().check() == []
    assert responses.calls[0].request.method == "GET"


@responses.activate
def test_check_explains_a_dropped_authorization_header() -> None:
    responses.get(ORDERS, json=error("cannot_view"), status=401)
    [problem] = connector().check()
    assert problem.severity == "error"
    assert "query_string_auth = true" in problem.message
    assert SECRET not in problem.message


@responses.activate
def test_check_reports_an_unreachable_api() -> None:
    responses.get(ORDERS, json=error("no_route"), status=404)
    [problem] = connector().check()
    assert "rest_no_route" in problem.message
    assert "?rest_route=" in problem.fix


@responses.activate
def test_check_warns_when_recent_orders_lack_the_consent_meta_key() -> None:
    meta = [
        {"id": 1, "key": "_wc_other/acme/sms-opt-in", "value": "1"},
        {"id": 2, "key": "is_vat_exempt", "value": "no"},
    ]
    responses.get(ORDERS, json=[order(meta_data=meta), order(4, created_via="admin", meta_data=[])])
    [problem] = connector().check()
    assert problem.severity == "warning"
    assert problem.area == "connector.consent_meta"
    assert OPTIN in problem.message
    assert "_wc_other/acme/sms-opt-in" in problem.message  # the key the checkout does save
    assert "1 latest checkout orders" in problem.message


def test_check_warns_about_plain_http() -> None:
    from cartrescue.connectors.woocommerce import WooCommerceConnector

    with responses.RequestsMock() as mock:
        mock.get("http://shop.example/wp-json/wc/v3/orders", json=[])
        problems = WooCommerceConnector(
            "http://shop.example", "ck_x", "cs_y", consent=["email"]
        ).check()
    assert [p.area for p in problems] == ["connector.url"]
    assert problems[0].severity == "warning"
