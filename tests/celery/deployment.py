"""A deployment of many shops for the Celery tests: one CSV export per shop, one
``cartrescue.toml`` with ``[[shops]]``, a PostgreSQL store and a Textbelt fake; worker
processes started as a store owner would start them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

COLUMNS = (
    "id,created_at,updated_at,completed_at,currency,total,recovery_url,email,phone,country,"
    "first_name,locale,email_consent,sms_consent,items"
)


def phone(shop: int, cart: int) -> str:
    return f"+4791{shop:02d}{cart:04d}"


def _channel(table: str, provider_url: str, rate: int, concurrency: int) -> str:
    return (
        f'[{table}]\ntype = "textbelt"\nkey_env = "TEXTBELT_KEY"\n'
        f'base_url = "{provider_url}"\nrate_limit = {rate}\nattempts = 2\n'
        f"concurrency = {concurrency}\n"
    )


def write_deployment(
    folder: Path,
    *,
    shops: int,
    carts: int | Sequence[int],
    provider_url: str,
    rate: int,
    concurrency: int = 4,
    shop_concurrency: Mapping[int, int] | None = None,
) -> Path:
    """The config file of ``shops`` shops with ``carts`` abandoned carts each (or
    ``carts[s]`` for shop ``s``), all due for their first reminder now. Every shop sends
    through one Textbelt account; ``shop_concurrency`` gives a shop its own ``[channels]``
    (the same account) with another ``concurrency``."""
    created = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
    counts = [carts] * shops if isinstance(carts, int) else list(carts)
    text = [
        _channel("channels.sms", provider_url, rate, concurrency),
        '[store]\nurl_env = "CARTRESCUE_DATABASE_URL"\n',
        '[policy]\nsend_window = "00:00-23:59"\n[run]\ninterval = "1m"\n',
    ]
    for s in range(shops):
        rows = [COLUMNS]
        for c in range(counts[s]):
            rows.append(
                f"{s}-{c},{created},{created},,EUR,30.00,https://shop{s}.example/r/{c},,"
                f"{phone(s, c)},NO,Kari,en,no,yes,1 x Mug @ 30.00"
            )
        (folder / f"shop{s}.csv").write_text("\n".join(rows) + "\n")
        text.append(
            f'[[shops]]\nname = "shop{s}"\ntimezone = "UTC"\n'
            f'[shops.connector]\ntype = "csvshop"\npath = "{folder}/shop{s}.csv"\n'
        )
        if shop_concurrency and s in shop_concurrency:
            text.append(_channel("shops.channels.sms", provider_url, rate, shop_concurrency[s]))
    path = folder / "cartrescue.toml"
    path.write_text("".join(text))
    return path


def worker_env(
    config: Path,
    *,
    broker: str,
    redis_url: str,
    db_url: str,
    lease: float,
    fair_window: float | None = None,
) -> dict[str, str]:
    extra = {} if fair_window is None else {"CARTRESCUE_FAIR_WINDOW": str(fair_window)}
    return {
        **os.environ,
        "CARTRESCUE_CONFIG": str(config),
        "CARTRESCUE_BROKER_URL": broker,
        "CARTRESCUE_REDIS_URL": redis_url,
        "CARTRESCUE_DATABASE_URL": db_url,
        "CARTRESCUE_LOCK_LEASE": str(lease),
        "TEXTBELT_KEY": "textbelt-test-key",
        **extra,
    }


class Workers:
    """Celery worker processes (prefork, one child each), each in its own process group."""

    def __init__(self, env: dict[str, str], count: int, logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.procs: list[subprocess.Popen[bytes]] = [self._start(n) for n in range(count)]

    def _start(self, n: int) -> subprocess.Popen[bytes]:
        log = (self.logs / f"worker{n}.log").open("ab")
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "cartrescue.celery",
                "worker",
                "--pool=prefork",
                "-c",
                "1",
                "-n",
                f"w{n}@%h",
                "-l",
                "info",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def restart(self, n: int) -> None:
        """Start worker ``n`` again (after :meth:`kill`), as systemd's ``Restart=`` would."""
        self.procs[n] = self._start(n)

    def kill(self, n: int) -> None:
        """SIGKILL worker ``n`` and its pool child at once, as a lost host would."""
        os.killpg(self.procs[n].pid, signal.SIGKILL)
        self.procs[n].wait(timeout=10)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)

    def output(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.logs.glob("*.log")))
