"""Celery fan-out against real servers: Redis (broker, locks, limits), RabbitMQ, PostgreSQL,
and real worker processes over loopback fakes."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("celery", reason="pip install -e '.[celery]' to run the Celery tests")

import redis

from cartrescue.celery import RUN_SHOP, RedisRateLimiter, ShopLock, create_app, run_pass
from cartrescue.config import load_config
from cartrescue.store.postgres import PostgresStore

from .conftest import FakeTextbelt
from .deployment import Workers, phone, worker_env, write_deployment

RATE = 20


def _wait_for(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
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
        limiter = RedisRateLimiter(client, "cartrescue:rate:test", 40, headroom=0.0)
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
    # Shared, the 24 calls are spaced 1/40 s apart; each client alone would let its 8 go in
    # 0.2 s, all three together in the same 0.2 s. (Thread wake-ups jitter a little.)
    assert times[-1] - times[0] >= 0.9 * 23 / 40
    in_half_second = max(sum(1 for t in times if start <= t < start + 0.5) for start in times)
    assert in_half_second <= 21


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


def test_workers_message_every_cart_once_within_the_rate_limit(
    tmp_path, redis_url, pg_url, textbelt
):
    shops, carts = 10, 20
    path = write_deployment(
        tmp_path, shops=shops, carts=carts, provider_url=textbelt.url, rate=RATE
    )
    env = worker_env(path, broker=redis_url, redis_url=redis_url, db_url=pg_url, lease=30)
    PostgresStore(pg_url).close()  # migrate once, before the workers race to
    app = create_app(path, env=env)
    workers = Workers(env, 3, tmp_path)
    try:
        for s in range(shops):
            app.send_task(RUN_SHOP, args=(f"shop{s}",))
        # Generous: the wait ends as soon as every cart is messaged; a loaded machine is slow.
        done = _wait_for(lambda: len(textbelt.sends) >= shops * carts, 150)
        _settled(textbelt, 1.0, 5)
    finally:
        workers.stop()
    sent = Counter(p for _, p, _ in textbelt.sends)
    assert done, workers.output()[-3000:]
    assert set(sent) == {phone(s, c) for s in range(shops) for c in range(carts)}
    assert max(sent.values()) == 1
    assert textbelt.max_in_one_second() <= RATE


def test_a_killed_worker_sends_nothing_twice_and_the_shop_runs_next_time(
    tmp_path, redis_url, pg_url, textbelt
):
    shops, carts = 4, 20
    path = write_deployment(
        tmp_path, shops=shops, carts=carts, provider_url=textbelt.url, rate=RATE
    )
    env = worker_env(path, broker=redis_url, redis_url=redis_url, db_url=pg_url, lease=2)
    PostgresStore(pg_url).close()
    app = create_app(path, env=env)
    workers = Workers(env, 3, tmp_path)
    try:
        for s in range(shops):
            app.send_task(RUN_SHOP, args=(f"shop{s}",))
        assert _wait_for(lambda: len(textbelt.sends) >= 15, 90), workers.output()[-3000:]
        workers.kill(0)  # mid-pass: three shops are being worked on
        _settled(textbelt, 1.5, 30)
        first_round = Counter(p for _, p, _ in textbelt.sends)
        assert len(first_round) < shops * carts  # the killed worker's shop was cut short
        time.sleep(2.5)  # its lease runs out
        for s in range(shops):  # the beat's next round
            app.send_task(RUN_SHOP, args=(f"shop{s}",))
        _wait_for(lambda: len(textbelt.sends) >= shops * carts - 4, 150)
        _settled(textbelt, 1.5, 15)
    finally:
        workers.stop()
    sent = Counter(p for _, p, _ in textbelt.sends)
    assert max(sent.values()) == 1, "a message was sent twice"
    # The messages in flight when the worker died (up to the channel's concurrency, 4) stay
    # claimed with their outcome unknown, so they are never sent again; every other cart is
    # messaged once, the killed worker's shop in its next run.
    stats = _stats(pg_url, shops)
    unknown = sum(
        n
        for s in stats.values()
        for (_, _, status), n in s.messages.items()
        if status in ("unknown", "claimed")
    )
    # A message in flight may have reached the provider before the kill (sent, yet unknown
    # in the store): unknown keys cover every cart not messaged, never more than in flight.
    assert len(sent) <= shops * carts
    assert len(sent) + unknown >= shops * carts
    assert unknown <= 4
    for shop, figures in stats.items():
        assert figures.last_pass_completed is not None, shop
    assert textbelt.max_in_one_second() <= RATE


def test_rabbitmq_as_the_broker(tmp_path, redis_url, amqp_url, pg_url, textbelt):
    path = write_deployment(tmp_path, shops=2, carts=3, provider_url=textbelt.url, rate=50)
    env = worker_env(path, broker=amqp_url, redis_url=redis_url, db_url=pg_url, lease=30)
    PostgresStore(pg_url).close()
    app = create_app(path, env=env)
    workers = Workers(env, 1, tmp_path)
    try:
        app.send_task(RUN_SHOP, args=("shop0",))
        app.send_task(RUN_SHOP, args=("shop1",))
        done = _wait_for(lambda: len(textbelt.sends) >= 6, 90)
    finally:
        workers.stop()
    assert done, workers.output()[-3000:]
    assert len({p for _, p, _ in textbelt.sends}) == 6


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
