"""Fan shops out to Celery workers (``pip install 'cartrescue[celery]'``).

Start the workers and the beat (the beat schedules one task per shop per ``[run]
interval``)::

    export CARTRESCUE_CONFIG=/etc/cartrescue/cartrescue.toml
    export CARTRESCUE_BROKER_URL=redis://127.0.0.1:6379/0     # or amqp://guest:guest@host//
    export CARTRESCUE_REDIS_URL=redis://127.0.0.1:6379/1      # locks and rate limits
    celery -A cartrescue.celery worker --pool=prefork --concurrency=2
    celery -A cartrescue.celery beat

What holds across workers and hosts:

- **A shop never runs twice at once**: a pass holds a Redis lock with a lease
  (``CARTRESCUE_LOCK_LEASE`` seconds, default 300) that a thread of the worker renews while the
  pass runs; a worker that dies stops renewing and the lease runs out, so the next run of
  that shop goes ahead. A task that finds its shop busy returns at once.
- **A re-delivered task sends nothing twice**: tasks are acknowledged after they finish
  (``acks_late``) so a lost worker's task is delivered again, and the store's outbox never
  sends a key twice.
- **Transient failures retry with backoff** (a connector or store that did not answer, a pass
  that did not complete): exponential, with jitter, up to 5 times.
- **Each provider's rate limit holds across workers**: every :class:`HttpChannel`'s limiter is
  replaced by :class:`RedisRateLimiter`, one per provider account (provider, base URL and a
  hash of the credentials), so shops sharing an account share its limit.
- **Shops share an account fairly**: a shop with thousands of messages due cannot take every
  slot of an account it shares. Each shop that asked for a slot within the last
  ``CARTRESCUE_FAIR_WINDOW`` seconds (default 2) counts as active; with N active, a shop
  is owed one slot in every N, and a shop that has had its share waits while another wants
  the next slot. A share nobody uses is not lost: a shop past its share still takes a slot
  the account has not reserved for anyone. ``CARTRESCUE_FAIR_WINDOW=0`` hands slots out
  first come, first served (a shop's share is then its share of the threads asking).

Why a script of our own: rate-limit libraries (``limits``, ``pyrate-limiter``) keep one
counter or bucket per key and answer yes or no; none shares one limit among keys, and a
fair share needs the account's next slot, the active shops and the shop's own share decided
in one atomic step, on one clock, for every worker and host. That is one short Lua script
on the Redis the locks already use.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis
from redis.lock import Lock

from celery import Celery, Task

from .channels.base import Channel, HttpChannel
from .config import Config, load_config
from .errors import (
    CartRescueError,
    ConfigError,
    ConnectorAuthError,
    ConnectorError,
    StoreError,
)
from .shops import select_shops

__all__ = [
    "PassIncomplete",
    "RedisRateLimiter",
    "ShopLock",
    "create_app",
    "run_shop",
    "share_rate_limits",
]

log = logging.getLogger("cartrescue.celery")

CONFIG_ENV = "CARTRESCUE_CONFIG"
BROKER_ENV = "CARTRESCUE_BROKER_URL"
REDIS_ENV = "CARTRESCUE_REDIS_URL"
LEASE_ENV = "CARTRESCUE_LOCK_LEASE"
ACTIVE_WINDOW_ENV = "CARTRESCUE_FAIR_WINDOW"
DEFAULT_ACTIVE_WINDOW = 2.0
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
RUN_SHOP = "cartrescue.run_shop"


class PassIncomplete(CartRescueError):
    """A pass stopped before it finished (the shop or the store did not answer); retried."""


# The next free slot of one account, as a GCRA: each call takes the slot ``interval`` after
# the last one handed out (or now), on Redis's clock, so processes on any host agree.
_SLOT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local interval = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local slot = math.max(now, tat)
local next_slot = slot + interval
redis.call('SET', KEYS[1], string.format('%.6f', next_slot),
           'PX', math.ceil((next_slot - now) * 1000) + 1000)
return string.format('%.6f', slot - now)
"""

# The same account GCRA, shared fairly among the shops sending through it. KEYS: the
# account's next slot, its active shops (a sorted set: shop -> last request), this shop's
# next fair slot. ARGV: account interval, shop, active window. Returns {granted, wait}: a
# granted call sleeps ``wait`` and sends; a refused one sleeps ``wait`` and asks again.
_FAIR_SLOT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local interval = tonumber(ARGV[1])
local window = tonumber(ARGV[3])
redis.call('ZADD', KEYS[2], now, ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
redis.call('PEXPIRE', KEYS[2], math.ceil(window * 1000) + 1000)
local active = redis.call('ZCARD', KEYS[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local slot = math.max(now, tat)
local mine = tonumber(redis.call('GET', KEYS[3]) or '0')
local within = mine <= slot
if not within and slot - now > interval then
  return {0, string.format('%.6f', math.min(mine, slot - interval) - now)}
end
local next_slot = slot + interval
redis.call('SET', KEYS[1], string.format('%.6f', next_slot),
           'PX', math.ceil((next_slot - now) * 1000) + 1000)
if within then
  local fair = slot + interval * active
  redis.call('SET', KEYS[3], string.format('%.6f', fair),
             'PX', math.ceil((fair - now) * 1000) + 1000)
end
return {1, string.format('%.6f', slot - now)}
"""


_RETAKES = 4


class RedisRateLimiter:
    """Spaces calls at least ``1 / rate`` seconds apart across every process that uses the
    same Redis and ``key``; a drop-in for :attr:`HttpChannel.rate_limiter`.

    ``headroom`` widens the spacing (10 % by default) so a request that reaches the provider
    up to 100 ms later than the one before (a slower route, a loaded host) cannot push one
    more into a provider's 1-second window; a caller that wakes for its slot later than
    half the headroom (50 ms) lets it go and takes another (up to three times), since sent
    late it would crowd the next one.

    With ``shop``, the account's slots are shared fairly among the shops sending through
    it: a shop that has had its share (one slot in every N, N the shops that asked within
    the last ``active_window`` seconds) waits while another shop wants the next slot, and
    takes it only when nobody else does. Without ``shop``, slots go first come, first
    served.
    """

    def __init__(
        self,
        client: redis.Redis,
        key: str,
        rate: float,
        *,
        headroom: float = 0.1,
        shop: str | None = None,
        active_window: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        if active_window <= 0:
            raise ValueError("active_window must be positive")
        self.key = key
        self.rate = rate
        self.shop = shop
        self.active_window = active_window
        self.interval = (1.0 + headroom) / rate
        self._script = client.register_script(_SLOT if shop is None else _FAIR_SLOT)
        self._sleep = sleep
        self._asking = threading.Lock()
        # Half the headroom: a send at most this late still keeps its 1-second windows.
        self._tolerance = headroom / 2 if headroom > 0 else float("inf")

    def acquire(self) -> None:
        # A slot woken up for too late (a loaded host, a busy interpreter) is let go and
        # another taken: sent late, it would reach the provider close behind the next one.
        for _ in range(_RETAKES):
            slot = self._take()
            if slot <= 0 or self._late_by(slot) <= self._tolerance:
                return

    def _late_by(self, slot: float) -> float:
        started = time.monotonic()
        self._sleep(slot)
        return time.monotonic() - started - slot

    def _take(self) -> float:
        """Reserves the next slot this caller may have; seconds until it comes."""
        interval = f"{self.interval:.6f}"
        if self.shop is None:
            return float(self._script(keys=[self.key], args=[interval]))
        keys = [self.key, f"{self.key}:active", f"{self.key}:shop:{self.shop}"]
        args = [interval, self.shop, f"{self.active_window:.3f}"]
        # One thread of this process asks at a time: a shop sending from 32 threads would
        # otherwise wake 32 of them at every refusal, to take one slot.
        with self._asking:
            while True:
                granted, wait = self._script(keys=keys, args=args)
                if int(granted):
                    return float(wait)
                self._sleep(float(wait))


def _account(channel: HttpChannel) -> str:
    digest = hashlib.sha256("\0".join(channel.secrets).encode()).hexdigest()[:16]
    return f"cartrescue:rate:{channel.provider}:{channel.base_url}:{digest}"


def share_rate_limits(
    channels: Mapping[Any, Channel],
    client: redis.Redis,
    *,
    shop: str | None = None,
    active_window: float = DEFAULT_ACTIVE_WINDOW,
) -> None:
    """Give each rate-limited :class:`HttpChannel` in ``channels`` a limiter shared through
    Redis by every worker sending with the same provider account; with ``shop``, shared
    fairly among the shops on that account (see :class:`RedisRateLimiter`)."""
    for channel in channels.values():
        if isinstance(channel, HttpChannel) and channel.rate_limit:
            channel.rate_limiter = RedisRateLimiter(
                client,
                _account(channel),
                channel.rate_limit,
                shop=shop,
                active_window=active_window,
            )


class ShopLock:
    """One shop's pass lock in Redis, with a lease (``lease`` seconds) a thread renews while
    the pass runs; if the process dies the lease runs out and the shop is free again."""

    def __init__(self, client: redis.Redis, shop: str, *, lease: float = 300.0) -> None:
        self.lease = lease
        self._lock: Lock = client.lock(
            f"cartrescue:lock:shop:{shop}", timeout=lease, blocking=False, thread_local=False
        )
        self._stop = threading.Event()

    @contextmanager
    def held(self) -> Iterator[bool]:
        """Yields whether the lock was taken; releases it afterwards."""
        if not self._lock.acquire(blocking=False):
            yield False
            return
        renewer = threading.Thread(target=self._renew, daemon=True, name="cartrescue-lease")
        renewer.start()
        try:
            yield True
        finally:
            self._stop.set()
            renewer.join(timeout=5)
            try:
                self._lock.release()
            except redis.exceptions.LockError:
                log.warning("the shop lock's lease ran out before the pass finished")

    def _renew(self) -> None:
        while not self._stop.wait(self.lease / 3):
            try:
                self._lock.reacquire()
            except redis.exceptions.RedisError as err:
                log.warning("could not renew the shop lock: %s", err)


def _shop_config(config: Config, shop: str) -> Config:
    if not config.shops and shop in ("", config.shop.name):
        return config
    return select_shops(config, shop)[0]


def run_pass(
    config: Config,
    shop: str,
    client: redis.Redis,
    *,
    lease: float,
    active_window: float = DEFAULT_ACTIVE_WINDOW,
) -> dict[str, Any]:
    """One pass for ``shop`` under its lock; what a task returns. ``active_window`` (seconds)
    shares each provider account fairly among its shops; ``0`` hands its slots out first
    come, first served."""
    chosen = _shop_config(config, shop)
    with ShopLock(client, shop, lease=lease).held() as taken:
        if not taken:
            log.info("shop=%s already running elsewhere; skipped", shop)
            return {"shop": shop, "skipped": "already running"}
        store = chosen.store()
        try:
            recovery = chosen.recovery(store=store)
            if active_window > 0:
                share_rate_limits(recovery.channels, client, shop=shop, active_window=active_window)
            else:
                share_rate_limits(recovery.channels, client)
            report = recovery.run()
        finally:
            store.close()
    if report.error:
        raise PassIncomplete(f"shop {shop}: {report.error}")
    return {"shop": shop, "counts": dict(report.counts), "fetched": report.fetched}


def _seconds(environment: Mapping[str, str], name: str, default: float) -> float:
    raw = environment.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise ConfigError(
            f"{raw!r} is not a number of seconds", key=name, fix="a number such as 2, or 0"
        )
    return value


_TRANSIENT = (PassIncomplete, StoreError, ConnectorError, redis.exceptions.ConnectionError)


def create_app(
    config_path: str | Path | None = None,
    *,
    broker: str | None = None,
    redis_url: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Celery:
    """A Celery app for the configuration at ``config_path`` (else ``$CARTRESCUE_CONFIG``):
    the ``cartrescue.run_shop`` task and a beat schedule with one entry per shop, every
    ``[run] interval``. The broker is ``broker`` or ``$CARTRESCUE_BROKER_URL`` (Redis or
    RabbitMQ); locks and rate limits live in ``redis_url`` or ``$CARTRESCUE_REDIS_URL``."""
    environment = dict(os.environ if env is None else env)
    path = config_path or environment.get(CONFIG_ENV, "cartrescue.toml")
    config = load_config(path, env=environment)
    broker_url = broker or environment.get(BROKER_ENV, DEFAULT_REDIS)
    locks_url = redis_url or environment.get(REDIS_ENV, DEFAULT_REDIS)
    lease = float(environment.get(LEASE_ENV, "300"))
    active_window = _seconds(environment, ACTIVE_WINDOW_ENV, DEFAULT_ACTIVE_WINDOW)
    app = Celery("cartrescue", broker=broker_url, set_as_current=False)
    shops = select_shops(config, every=True)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
        beat_schedule={
            f"cartrescue-run-{c.shop_key or 'shop'}": {
                "task": RUN_SHOP,
                "schedule": c.run_interval.total_seconds(),
                "args": (c.shop_key or c.shop.name,),
                "options": {"expires": c.run_interval.total_seconds()},
            }
            for c in shops
        },
    )
    client: redis.Redis | None = None

    def locks() -> redis.Redis:
        nonlocal client
        if client is None:
            client = redis.Redis.from_url(locks_url)
        return client

    @app.task(  # type: ignore[untyped-decorator]
        name=RUN_SHOP,
        bind=True,
        autoretry_for=_TRANSIENT,
        dont_autoretry_for=(ConnectorAuthError,),
        retry_backoff=2,
        retry_backoff_max=300,
        retry_jitter=True,
        max_retries=5,
    )
    def run_shop(task: Task, shop: str) -> dict[str, Any]:
        """One pass for one shop."""
        return run_pass(config, shop, locks(), lease=lease, active_window=active_window)

    app.cartrescue_config = config
    return app


def __getattr__(name: str) -> Any:
    # ``celery -A cartrescue.celery`` looks for ``app``: built from the environment on first use.
    if name == "app":
        built = create_app()
        globals()["app"] = built
        return built
    raise AttributeError(name)


def run_shop(app: Celery, shop: str) -> Any:
    """Queue one pass for ``shop`` (what the beat does every interval)."""
    return app.send_task(RUN_SHOP, args=(shop,))
