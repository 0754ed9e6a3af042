"""How fast the WooCommerce connector polls: orders per second against the fake WooCommerce.

The fake shop runs in its own process (so it does not share the interpreter lock with the
connector) and is seeded with unpaid checkout orders shaped like real ones (billing address
and phone, two line items with variation meta, an opt-in meta key). One full pass maps every
order to a Checkout; the figure is orders / wall-clock second, over plain HTTP with OAuth 1.0a
signatures and over "HTTPS" (a TLS-terminating proxy in front) with Basic auth. The wall clock
includes the fake's own time (it filters every order for each request, like a database without
an index would); the connector's share is shown as its CPU time.

    python bench/woo_poll.py            # 20 000 orders
    python bench/woo_poll.py 5000
"""

from __future__ import annotations

import multiprocessing as mp
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from cartrescue.connectors.woocommerce import WooCommerceConnector
from cartrescue.models import Checkout
from cartrescue_testing.fake_woocommerce import FakeWooCommerce

NOW = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)


def serve(n: int, is_ssl: bool, ready: Any, stop: Any) -> None:
    with FakeWooCommerce(is_ssl=is_ssl, clock=lambda: NOW) as shop:
        shop.add_sample_orders(n, start=NOW - timedelta(days=3), every=timedelta(days=3) / n)
        ready.put((shop.base_url, shop.rest_url, shop.consumer_key, shop.consumer_secret))
        stop.get()
        ready.put(len(shop.requests))


def run(n: int, is_ssl: bool) -> None:
    ctx = mp.get_context("spawn")
    ready, stop = ctx.Queue(), ctx.Queue()
    server = ctx.Process(target=serve, args=(n, is_ssl, ready, stop), daemon=True)
    server.start()
    base_url, rest_url, key, secret = ready.get(timeout=600)
    url = "https://shop.example" if is_ssl else base_url
    connector = WooCommerceConnector(
        url,
        key,
        secret,
        base_url=rest_url,
        consent_meta={"sms": "_wc_other/acme/sms-optin"},
        clock=lambda: NOW,  # the shop's clock: OAuth timestamps are checked against it
    )
    started, cpu = time.perf_counter(), time.process_time()
    count = sum(
        1 for c in connector.abandoned_checkouts(NOW - timedelta(days=4)) if isinstance(c, Checkout)
    )
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    stop.put(None)
    requests_made = ready.get(timeout=60)
    server.join(timeout=10)
    auth = "Basic auth (is_ssl)" if is_ssl else "OAuth 1.0a (plain HTTP)"
    print(
        f"{auth:<24} {count:>6} orders in {elapsed:6.2f} s over {requests_made} requests: "
        f"{count / elapsed:6.0f} orders/s (connector CPU {cpu:5.2f} s: {count / cpu:6.0f} orders/s)"
    )
    assert count == n, f"expected {n} checkouts, got {count}"


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    print(
        f"woo_poll: one full pass over {n} unpaid orders, 100 a page, fake shop in its own process"
    )
    for is_ssl in (False, True):
        run(n, is_ssl)


if __name__ == "__main__":
    main()
