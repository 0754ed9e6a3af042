"""Celery fan-out against real servers: Redis (broker, locks, limits), RabbitMQ, PostgreSQL,
and real worker processes over loopback fakes."""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("celery", reason="pip install -e '.[celery]' to run the Celery tests")

import redis

from cartrescue.celery import RUN_SHOP, RedisRateLimiter, ShopLock, create_app, run_pass
from cartrescue.config import load_config
from cartrescue.errors import ConfigError
from cartrescue.store.postgres import PostgresStore

from .conftest import FakeTextbelt
from .deployment import Workers, phone, worker_env, write_deployment

# 10,000 messages at up to 200 a second: 50 s at the least, more on a loaded machine.
SCALE_SHOPS, SCALE_CARTS, SCALE_RATE = 50, 200, 200


def _wait_for(condition, seconds: float, *, every: float = 0.2) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every)
    return condition()


def _settled(fake: FakeTextbelt, quiet: float, seconds: float) -> None:
    """Wait until the fake has heard nothing for ``quiet`` seconds (at most ``seconds``)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sends = fake.sends
        if sends and time.time() - max(t for t, _, _ in sends) > quiet:
            return
        time.sleep(0.2)


def test_the_limiter_spaces_calls_across_clients(redis_url):
    clients = [redis.Redis.from_url(redis_url) for _ in range(3)]
    times: list[float] = []
    lock = threading.Lock()

    def send(client: redis.Redis) -> None:
        limiter = RedisRateLimiter(client, "cartrescue:rate:test", 40)
        for _ in range(8):
            limiter.acquire()
            with lock:
                times.append(time.monotonic())

    threads = [threading.Thread(target=send, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    times.sort()
    assert len(times) == 24
    # Shared, the 24 calls are spaced 1.1/40 s apart; each client alone would let its 8 go in
    # 0.2 s, all three together in the same 0.2 s. (Thread wake-ups jitter a little.)
    assert times[-1] - times[0] >= 0.9 * 23 / 40
    in_half_second = max(sum(1 for t in times if start <= t < start + 0.5) for start in times)
    assert in_half_second <= 21


def _grants(
    redis_url: str, shops: dict[str, tuple[int, float]], rate: float, seconds: float
) -> Counter[str]:
    """Calls granted to each shop on one account in ``seconds``: ``shops`` maps a shop to
    (threads, pause after each call), each thread with its own Redis client."""
    granted: Counter[str] = Counter()
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def send(shop: str, pause: float) -> None:
        limiter = RedisRateLimiter(
            redis.Redis.from_url(redis_url), "cartrescue:rate:fair", rate, shop=shop
        )
        while True:
            limiter.acquire()
            if time.monotonic() >= stop:
                return
            with lock:
                granted[shop] += 1
            time.sleep(pause)

    threads = [
        threading.Thread(target=send, args=(shop, pause))
        for shop, (count, pause) in shops.items()
        for _ in range(count)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 10)
    return granted


def test_the_limiter_shares_an_account_fairly_among_shops(redis_url):
    # A shop asking from 12 threads and one asking from 1: first come, first served would
    # give the second one slot in 13; shared fairly, it gets one in 2.
    granted = _grants(redis_url, {"busy": (12, 0.0), "small": (1, 0.0)}, 100, 2.0)
    assert sum(granted.values()) <= 100 * 2.0 + 2
    assert granted["small"] >= 0.4 * sum(granted.values()), granted


def test_the_limiter_gives_a_share_nobody_uses_to_who_asks(redis_url):
    # The small shop wants about 15 a second of its 50: it gets them (first come, first
    # served would queue each behind the busy shop's 12), and the busy shop takes the rest.
    granted = _grants(redis_url, {"busy": (12, 0.0), "small": (1, 0.05)}, 100, 2.0)
    assert 0.8 * 100 / 1.1 * 2.0 <= sum(granted.values()) <= 100 * 2.0 + 2, granted
    assert granted["small"] >= 20, granted


def test_a_shop_runs_once_at_a_time_and_a_dead_holder_loses_the_lease(redis_url):
    client = redis.Redis.from_url(redis_url)
    first, second = ShopLock(client, "nordlys", lease=1.5), ShopLock(client, "nordlys")
    with first.held() as taken:
        assert taken
        time.sleep(2)  # longer than the lease: the holder renews it
        with second.held() as again:
            assert not again
    with second.held() as taken:
        assert taken
    # A holder that died: the lock is set, nobody renews it.
    client.lock("cartrescue:lock:shop:lisboa", timeout=1).acquire()
    with ShopLock(client, "lisboa").held() as taken:
        assert not taken
    time.sleep(1.2)
    with ShopLock(client, "lisboa").held() as taken:
        assert taken


def test_a_redelivered_task_sends_nothing_twice(tmp_path, redis_url, pg_url, textbelt):
    path = write_deployment(tmp_path, shops=1, carts=5, provider_url=textbelt.url, rate=50)
    env = worker_env(path, broker=redis_url, redis_url=redis_url, db_url=pg_url, lease=30)
    config = load_config(path, env=env)
    client = redis.Redis.from_url(redis_url)
    first = run_pass(config, "shop0", client, lease=30)
    again = run_pass(config, "shop0", client, lease=30)  # the same task, delivered again
    assert first["counts"]["sent"] == 5
    assert "sent" not in again["counts"]
    assert sorted(p for _, p, _ in textbelt.sends) == [phone(0, c) for c in range(5)]


def _stats(pg_url: str, shops: int) -> dict[str, Any]:
    with PostgresStore(pg_url) as store:
        return {f"shop{s}": store.for_shop(f"shop{s}").stats(_now()) for s in range(shops)}


def _now():
    from datetime import UTC, datetime

    return datetime.now(UTC)


def _shop_of(number: str) -> int:
    return int(number[5:7])


def _running_when_killed(workers: Workers, n: int) -> str:
    """The shop worker ``n`` was running: the last task it received (one at a time, as
    prefetch is 1); task ids start with the shop's name."""
    log = (workers.logs / f"worker{n}.log").read_text(errors="replace")
    received = re.findall(r"run_shop\[(shop\d+)-[^\]]*\] received", log)
    assert received, log[-3000:]
    return received[-1]


def _send_round(app, shops: list[str], round_: int) -> None:
    for shop in shops:
        app.send_task(RUN_SHOP, args=(shop,), task_id=f"{shop}-{round_}-{uuid.uuid4()}")


def _completed_since(pg_url: str, shop: str, moment) -> bool:
    with PostgresStore(pg_url) as store:
        done = store.for_shop(shop).stats(_now()).last_pass_completed
    return done is not None and done > moment


@pytest.mark.parametrize(
    ("broker", "carts"),
    # RabbitMQ hands a lost worker's task out again at once, Redis after its visibility
    # timeout: both paths, the second at a tenth of the carts to keep the module short.
    [("redis", SCALE_CARTS), ("amqp", SCALE_CARTS // 10)],
)
def test_three_workers_message_every_cart_once_through_a_killed_worker(
    broker, carts, request, tmp_path, redis_url, pg_url, textbelt
):
    """50 shops on 3 worker processes; one worker is SIGKILLed mid-pass and restarted."""
    broker_url = redis_url if broker == "redis" else request.getfixturevalue("amqp_url")
    shops = SCALE_SHOPS
    total = shops * carts
    names = [f"shop{s}" for s in range(shops)]
    path = write_deployment(
        tmp_path, shops=shops, carts=carts, provider_url=textbelt.url, rate=SCALE_RATE
    )
    env = worker_env(path, broker=broker_url, redis_url=redis_url, db_url=pg_url, lease=3)
    PostgresStore(pg_url).close()  # migrate once, before the workers race to
    app = create_app(path, env=env)
    app.control.purge()  # nothing left over from an earlier run on this broker
    client = redis.Redis.from_url(redis_url)
    workers = Workers(env, 3, tmp_path)
    try:
        _send_round(app, names, 1)
        # Generous ceilings: each wait ends as soon as its outcome is there.
        assert _wait_for(lambda: textbelt.count() >= total // 4, 240), workers.output()[-3000:]
        killed_at = _now()
        workers.kill(0)  # mid-pass: every worker is busy while tasks are queued
        killed = _running_when_killed(workers, 0)
        workers.restart(0)
        _settled(textbelt, 3.0, 300)  # the round goes on to its end
        # The beat's next round, once the dead worker's lease has run out (the killed
        # worker's shop first: the wait below is for it, not for 49 passes with nothing due).
        assert _wait_for(lambda: not client.exists(f"cartrescue:lock:shop:{killed}"), 60)
        _send_round(app, [killed] + [n for n in names if n != killed], 2)
        done = _wait_for(lambda: _completed_since(pg_url, killed, killed_at), 300, every=1.0)
        _settled(textbelt, 1.0, 30)
    finally:
        workers.stop()
    assert done, workers.output()[-3000:]
    sent = Counter(p for _, p, _ in textbelt.sends)
    assert max(sent.values()) == 1, "a message was sent twice"
    stats = _stats(pg_url, shops)
    unknown = Counter(
        shop
        for shop, figures in stats.items()
        for (_, _, status), n in figures.messages.items()
        for _ in range(n)
        if status in ("unknown", "claimed")
    )
    # The messages in flight when the worker died (up to the channel's concurrency, 4) stay
    # claimed with their outcome unknown and are never sent again (one may have reached the
    # provider before the kill); every other cart is messaged exactly once.
    assert set(unknown) <= {killed}
    assert unknown[killed] <= 4
    assert len(sent) + unknown[killed] >= total
    assert set(sent) <= {phone(s, c) for s in range(shops) for c in range(carts)}
    for shop, figures in stats.items():
        assert figures.last_pass_completed is not None, shop
    window = textbelt.max_in_one_second()
    assert window <= SCALE_RATE, window


def test_a_busy_shop_does_not_starve_the_small_ones(tmp_path, redis_url, pg_url, textbelt):
    """One account, one busy shop sending from 16 threads, four small shops from one each:
    a small shop gets its fair share of the account (rate / active shops), not one slot in
    18 as first come, first served would give it."""
    rate, small, small_carts, busy_carts = 20, 4, 12, 200
    shops = 1 + small
    path = write_deployment(
        tmp_path,
        shops=shops,
        carts=[busy_carts] + [small_carts] * small,
        provider_url=textbelt.url,
        rate=rate,
        concurrency=1,
        shop_concurrency={0: 16},
    )
    env = worker_env(path, broker=redis_url, redis_url=redis_url, db_url=pg_url, lease=30)
    PostgresStore(pg_url).close()
    app = create_app(path, env=env)
    app.control.purge()
    workers = Workers(env, 3, tmp_path)
    try:
        app.send_task(RUN_SHOP, args=("shop0",))
        # The busy shop has the account to itself for a second before the others come.
        assert _wait_for(lambda: textbelt.count() >= rate, 120), workers.output()[-3000:]
        for s in range(1, shops):
            app.send_task(RUN_SHOP, args=(f"shop{s}",))
        done = _wait_for(lambda: textbelt.count() >= busy_carts + small * small_carts, 240)
    finally:
        workers.stop()
    assert done, workers.output()[-3000:]
    arrivals: dict[int, list[float]] = {}
    for moment, number, _ in textbelt.sends:
        arrivals.setdefault(_shop_of(number), []).append(moment)
    assert sorted(len(times) for times in arrivals.values()) == [small_carts] * small + [busy_carts]
    # At most every shop is active at once, so each gets at least rate / shops a second
    # (less the limiter's 10 % headroom); twice that time, and a second for the passes'
    # own work, bound a small shop's messages. First come, first served gives a small shop
    # one slot in 1 + 16 + 1 (about 10 s here).
    share = rate / 1.1 / shops
    bound = 2 * (small_carts - 1) / share + 1.0
    spans = {s: max(t) - min(t) for s, t in arrivals.items() if s != 0}
    assert max(spans.values()) <= bound, (spans, bound)
    window = textbelt.max_in_one_second()
    assert window <= rate, window


def test_the_beat_schedules_one_task_per_shop_per_interval(tmp_path, redis_url, pg_url):
    path = write_deployment(tmp_path, shops=3, carts=1, provider_url="http://127.0.0.1:9", rate=5)
    env = worker_env(path, broker=redis_url, redis_url=redis_url, db_url=pg_url, lease=30)
    app = create_app(path, env=env)
    schedule = app.conf.beat_schedule
    assert sorted(entry["args"] for entry in schedule.values()) == [
        ("shop0",),
        ("shop1",),
        ("shop2",),
    ]
    assert {entry["schedule"] for entry in schedule.values()} == {60.0}
    assert {entry["task"] for entry in schedule.values()} == {RUN_SHOP}
    assert Path(app.cartrescue_config.path) == path


def test_a_fair_window_that_is_not_seconds_is_refused(tmp_path):
    path = write_deployment(tmp_path, shops=1, carts=1, provider_url="http://127.0.0.1:9", rate=5)
    env = {"TEXTBELT_KEY": "k", "CARTRESCUE_DATABASE_URL": "postgresql://x@127.0.0.1/x"}
    with pytest.raises(ConfigError) as caught:
        create_app(path, env={**env, "CARTRESCUE_FAIR_WINDOW": "two"})
    assert caught.value.key == "CARTRESCUE_FAIR_WINDOW"
    assert "'two'" in str(caught.value)
    assert create_app(path, env={**env, "CARTRESCUE_FAIR_WINDOW": "0"}) is not None
