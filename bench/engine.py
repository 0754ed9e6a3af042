"""Engine speed: what a pass costs beyond its I/O, its memory, and how busy it keeps channels.

Every figure is a ratio of two timings taken in the same run (medians of ``--repeats``), so
they compare across machines:

- a synthetic shop: every checkout due (step 1, by SMS, inside the send window), an in-memory
  connector that builds and yields one page at a time and honours ``since`` like a real
  platform, ``MemoryChannel``, a fresh SQLite file per pass, a frozen clock;
  * fetch alone: iterating the connector's checkouts;
  * fetch + render: the same, rendering each checkout's step-1 SMS (the floor of a pass);
  * full pass vs fetch + render (goal <= 2);
  * claim + finish alone: the two committed transactions every message costs (the outbox's
    claim before the send, its result right after), on a fresh store in one thread; the
    floor of a pass is fetch + render + claim + finish, and the pass is shown against it;
  * second pass at the same time (nothing due, nothing fetched: every open checkout's
    look-again time stands) vs fetch alone (goal <= 1.5);
  * SQL statements per checkout of each pass (a count, so it does not depend on the
    machine's load);
  * where one full pass goes: the time inside upserts, history reads, the policy, look-again
    writes, claims, rendering, the channel and finishes, summed over the pass's threads;
- extra peak RSS of a full pass at each size, each in a fresh subprocess
  (``resource.getrusage`` max RSS after the pass minus the resident set right before it, with
  a channel that keeps nothing; goal: the largest within 20 MB of the smallest), and once a
  size the peak of Python's own allocations during a pass (``tracemalloc``);
- ``Recovery.run()`` dispatch: messages a second of a whole pass through ``TwilioSMS``
  against a loopback provider answering after 50 ms (in a child process, as a real provider
  is not in ours; ``--provider-in-process`` puts it in a thread here), vs min(rate limit,
  concurrency / latency), at concurrency 4, 8 and 16 (goal >= 0.9), beside the same ratio
  for plain ``requests`` posting from as many threads (the provider's own floor);
- Shopify: a full pass vs fetching the same checkouts through ``ShopifyConnector`` from
  ``FakeShopify`` (no throttle; in a child process, as Shopify is not in ours;
  ``--shopify-in-process`` puts it in a thread here; goal <= 2).

    python bench/engine.py            # the whole table (a few minutes)
    python bench/engine.py --quick    # smaller sizes, one repeat less
    python bench/engine.py --only pass,memory
    python bench/engine.py --only dispatch --provider-in-process
"""

from __future__ import annotations

import argparse
import gc
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from multiprocessing.connection import Connection
from pathlib import Path

from _provider import BenchProvider, spawn

from cartrescue.channels.twilio import TwilioSMS
from cartrescue.clock import FrozenClock
from cartrescue.engine import Recovery
from cartrescue.models import Checkout, Customer, LineItem, Message, Receipt, ShopInfo
from cartrescue.policy import contact_keys
from cartrescue.render import MessageContext, TemplateRenderer
from cartrescue.store.sqlite import SQLiteStore
from cartrescue_testing.contracts import Recorded, Reply
from cartrescue_testing.memory import MemoryChannel

NOW = datetime(2026, 11, 10, 20, 0, tzinfo=UTC)  # noon in San Francisco: inside the window
SHOP = ShopInfo(name="Bench shop", locale="en", timezone="America/New_York")
SID = "AC0123456789abcdef0123456789abcdef"
ALL = ("pass", "breakdown", "memory", "dispatch", "shopify")


def updated(n: int, now: datetime = NOW) -> datetime:
    return now - timedelta(hours=2) - timedelta(milliseconds=n)


def checkout(n: int, now: datetime = NOW) -> Checkout:
    """Checkout ``n``: abandoned about two hours before ``now`` (step 1 due), one buyer each."""
    at = updated(n, now)
    return Checkout(
        id=str(10_000_000 + n),
        abandoned_at=at,
        updated_at=at,
        recovery_url=f"https://bench.example/checkouts/{n:032x}/recover?key=k{n}",
        currency="USD",
        total=Decimal("54.00"),
        line_items=(
            LineItem("Linen napkins", 2, Decimal("22.00"), variant="Sand", sku="LN-S"),
            LineItem("Tea towel", 1, Decimal("10.00")),
        ),
        customer=Customer(
            first_name="Emily",
            last_name="Carter",
            email=f"buyer{n}@example.com",
            phone=f"+1415{2_000_000 + n % 7_000_000:07d}",
            locale="en",
            email_consent=True,
            sms_consent=True,
        ),
    )


class SyntheticShop:
    """An in-memory connector: builds and yields its checkouts one page at a time, and only
    those updated after ``since`` (as a platform's ``updated_at_min`` does)."""

    name = "bench"

    def __init__(self, count: int, page_size: int = 250) -> None:
        self.count = count
        self.page_size = page_size

    def abandoned_checkouts(self, since: datetime | None) -> Iterator[Checkout]:
        for start in range(0, self.count, self.page_size):
            numbers = range(start, min(start + self.page_size, self.count))
            # the platform filters: a checkout not updated since is never built
            yield from [checkout(n) for n in numbers if since is None or updated(n) > since]


def timed(work: Callable[[], object]) -> float:
    gc.collect()
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def median_of(repeats: int, work: Callable[[], float]) -> float:
    return statistics.median(work() for _ in range(repeats))


# -- the synthetic pass -----------------------------------------------------------------------
def fetch(count: int) -> None:
    for _ in SyntheticShop(count).abandoned_checkouts(None):
        pass


def fetch_render(count: int, renderer: TemplateRenderer) -> None:
    for item in SyntheticShop(count).abandoned_checkouts(None):
        renderer.render(
            "sms", 1, MessageContext(checkout=item, shop=SHOP, locale="en", link=item.recovery_url)
        )


class ForgetfulChannel(MemoryChannel):
    """A MemoryChannel that keeps no message (MemoryChannel keeps them all, which would be
    the memory figure's own growth)."""

    def send(self, message: Message) -> Receipt:
        receipt = super().send(message)
        self.sent.clear()
        return receipt


def recovery(count: int, store: SQLiteStore, channel: object | None = None) -> Recovery:
    return Recovery(
        SyntheticShop(count),
        [channel or MemoryChannel("sms")],  # type: ignore[list-item]
        store,
        clock=FrozenClock(NOW),
        shop=SHOP,
    )


class Statements:
    """Counts the SQL statements a store's connection runs (its trace callback)."""

    def __init__(self, store: SQLiteStore) -> None:
        self.count = 0
        self._last = ""
        store._db.set_trace_callback(self._seen)

    def _seen(self, statement: str) -> None:
        # Entering a trigger is traced again with the statement that fired it.
        if statement != self._last and not statement.lstrip().startswith("--"):
            self.count += 1
        self._last = statement


def passes(count: int, folder: Path, index: int) -> tuple[float, float, int, int, int]:
    """A full pass on a fresh store, then a second pass at the same time: (seconds, seconds,
    messages sent by the first, statements of the first, statements of the second)."""
    store = SQLiteStore(folder / f"pass-{index}.db")
    try:
        first = recovery(count, store)
        report: list[int] = []
        statements = Statements(store)
        full = timed(lambda: report.append(first.run().counts["sent"]))
        full_statements, statements.count = statements.count, 0
        second = timed(lambda: recovery(count, store).run())
    finally:
        store.close()
    return full, second, report[0], full_statements, statements.count


def claims(count: int, folder: Path, index: int) -> float:
    """Seconds for ``count`` messages' claim and finish alone, as a pass makes them."""
    store = SQLiteStore(folder / f"claims-{index}.db")
    try:
        items = [checkout(n) for n in range(count)]

        def work() -> None:
            for item in items:
                key = f"{item.id}:1:sms"
                assert item.customer is not None
                assert item.customer.phone
                store.claim(
                    key,
                    checkout_id=item.id,
                    step=1,
                    channel="sms",
                    recipient=item.customer.phone,
                    contacts=contact_keys(item.customer),
                    at=NOW,
                    cap_since=NOW - timedelta(hours=20),
                    run_id=1,
                )
                store.finish(key, "sent", NOW, provider_id="mem-1")

        return timed(work)
    finally:
        store.close()


def bench_pass(count: int, repeats: int) -> None:
    renderer = TemplateRenderer()
    fetch_render(50, renderer)  # load templates and locale data outside the timings
    fetch_s = median_of(repeats, lambda: timed(lambda: fetch(count)))
    render_s = median_of(repeats, lambda: timed(lambda: fetch_render(count, renderer)))
    with tempfile.TemporaryDirectory() as tmp:
        # interleaved, so a neighbour's load falls on every figure alike
        runs, claim_runs = [], []
        for i in range(repeats):
            runs.append(passes(count, Path(tmp), i))
            claim_runs.append(claims(count, Path(tmp), i))
    full_s = statistics.median(r[0] for r in runs)
    second_s = statistics.median(r[1] for r in runs)
    claim_s = statistics.median(claim_runs)
    floor_s = render_s + claim_s
    sent, full_n, second_n = runs[0][2], runs[0][3], runs[0][4]
    print(f"synthetic shop, {count} checkouts, every one due; {sent} sent by the first pass")
    print(f"  fetch alone            {fetch_s:8.3f} s  ({fetch_s / count * 1e6:6.1f} µs each)")
    print(f"  fetch + render         {render_s:8.3f} s  ({render_s / count * 1e6:6.1f} µs each)")
    print(f"  claim + finish alone   {claim_s:8.3f} s  ({claim_s / count * 1e6:6.1f} µs each)")
    print(f"  floor (the three)      {floor_s:8.3f} s  ({floor_s / count * 1e6:6.1f} µs each)")
    print(f"  full pass              {full_s:8.3f} s  ({full_s / count * 1e6:6.1f} µs each)")
    print(f"  second pass            {second_s:8.3f} s  ({second_s / count * 1e6:6.1f} µs each)")
    print(
        f"  SQL statements per checkout: full pass {full_n / count:.2f},"
        f" second pass {second_n / count:.3f}"
    )
    print(f"  full pass / fetch alone          {full_s / fetch_s:6.2f}x")
    verdict(f"  full pass / (fetch + render)     {full_s / render_s:6.2f}x", full_s / render_s, 2.0)
    print(f"  full pass / floor                {full_s / floor_s:6.2f}x")
    verdict(
        f"  second pass / fetch alone        {second_s / fetch_s:6.2f}x", second_s / fetch_s, 1.5
    )
    print(f"  second pass / full pass          {second_s / full_s:6.2f}")


class Inside:
    """Seconds spent inside some functions during a pass, summed over the threads that
    call them (the pass decides in its own thread; a channel's worker claims, renders,
    sends and records)."""

    def __init__(self, targets: dict[str, tuple[object, str]]) -> None:
        self.seconds = dict.fromkeys(targets, 0.0)
        self._saved: list[tuple[object, str, object]] = []
        self._lock = threading.Lock()
        for label, (owner, name) in targets.items():
            original = getattr(owner, name)
            self._saved.append((owner, name, original))
            setattr(owner, name, self._timed(label, original))

    def _timed(self, label: str, original: Callable[..., object]) -> Callable[..., object]:
        def timed_call(*args: object, **kwargs: object) -> object:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                spent = time.perf_counter() - started
                with self._lock:
                    self.seconds[label] += spent

        return timed_call

    def restore(self) -> None:
        for owner, name, original in reversed(self._saved):
            setattr(owner, name, original)


def bench_breakdown(count: int) -> None:
    """Where one full pass's time goes, and what the pass would cost without the two
    committed transactions each message needs."""
    import cartrescue.engine as engine_module

    renderer = TemplateRenderer()
    fetch_render(50, renderer)
    fetch_s = timed(lambda: fetch(count))
    inside = Inside(
        {
            "upsert a page": (SQLiteStore, "upsert_checkouts"),
            "read histories": (SQLiteStore, "histories"),
            "decide (policy)": (engine_module, "decide"),
            "look-again writes": (SQLiteStore, "set_look_again"),
            "claim": (SQLiteStore, "claim"),
            "render": (TemplateRenderer, "render"),
            "send (memory)": (MemoryChannel, "send"),
            "finish": (SQLiteStore, "finish"),
        }
    )
    try:
        with tempfile.TemporaryDirectory() as tmp:
            store = SQLiteStore(Path(tmp) / "breakdown.db")
            engine = recovery(count, store)
            engine.renderer = renderer
            full_s = timed(engine.run)
            store.close()
    finally:
        inside.restore()
    print(f"where a full pass of {count} goes (time inside, summed over its threads)")
    print(f"  {'full pass (wall)':<22}{full_s:8.3f} s  {full_s / count * 1e6:7.1f} µs each")
    print(f"  {'fetch (measured alone)':<22}{fetch_s:8.3f} s  {fetch_s / count * 1e6:7.1f} µs each")
    for label, seconds in inside.seconds.items():
        print(
            f"  {label:<22}{seconds:8.3f} s  {seconds / count * 1e6:7.1f} µs each"
            f"  {seconds / full_s:6.1%} of the pass"
        )
    store_s = inside.seconds["claim"] + inside.seconds["finish"]
    print(
        f"  claim + finish are {store_s / full_s:.0%} of the pass; the pass without them would"
        f" be {(full_s - store_s) / full_s:.0%} of it"
    )


def verdict(line: str, value: float, limit: float, *, at_least: bool = False) -> None:
    ok = value >= limit if at_least else value <= limit
    goal = f"{'>=' if at_least else '<='} {limit:g}"
    print(f"{line}   goal {goal}: {'met' if ok else 'NOT MET'}")


# -- memory -----------------------------------------------------------------------------------
def rss_now() -> float:
    """This process's resident set now, in KiB (Linux; elsewhere its peak so far)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return float(line.split()[1])
    except OSError:
        pass
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def memory_child(count: int, traced: bool) -> None:
    """In a fresh process: one full pass of ``count`` checkouts; print its peak RSS above
    the resident set right before it (MB) and, with ``traced``, the peak of the Python
    memory a second pass allocates (``tracemalloc``, MB; slower, so once a size)."""
    import tracemalloc

    with tempfile.TemporaryDirectory() as tmp:
        fetch_render(50, TemplateRenderer())
        recovery(50, SQLiteStore(":memory:")).run()  # warm every code path up
        gc.collect()
        store = SQLiteStore(Path(tmp) / "memory.db")
        before = rss_now()
        recovery(count, store, ForgetfulChannel("sms")).run()
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        store.close()
        peak = float("nan")
        if traced:
            store = SQLiteStore(Path(tmp) / "traced.db")
            gc.collect()
            tracemalloc.start()
            recovery(count, store, ForgetfulChannel("sms")).run()
            peak = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
            store.close()
    print(max(0.0, after - before) / 1024, peak)


def bench_memory(sizes: list[int], repeats: int) -> None:
    print("extra peak RSS of a full pass over the resident set before it (fresh process each)")
    figures = {}
    for size in sizes:
        samples, traced = [], float("nan")
        for index in range(repeats):
            command = [sys.executable, __file__, "--memory-child", str(size)]
            out = subprocess.run(
                [*command, "--traced"] if index == 0 else command,
                check=True,
                capture_output=True,
                text=True,
            ).stdout.split()
            samples.append(float(out[-2]))
            traced = traced if index else float(out[-1])
        figures[size] = statistics.median(samples)
        print(
            f"  {size:>7} checkouts: {figures[size]:7.1f} MB"
            f"   (Python's own peak during a pass, tracemalloc: {traced:6.1f} MB)"
        )
    spread = figures[max(sizes)] - figures[min(sizes)]
    verdict(f"  {max(sizes)} minus {min(sizes)}: {spread:7.1f} MB", spread, 20.0)


# -- dispatch ---------------------------------------------------------------------------------
def created(request: Recorded) -> Reply:
    fields = request.form()
    return Reply(201, {"sid": "SM" + fields["To"][-12:].rjust(32, "0"), "status": "queued"})


def dispatch(
    concurrency: int, rate: float, latency: float, seconds: float, in_process: bool = False
) -> float:
    bound = min(rate, concurrency / latency)
    count = max(40, int(bound * seconds))
    with (
        BenchProvider(created, latency, in_process=in_process) as provider,
        tempfile.TemporaryDirectory() as tmp,
    ):
        channel = TwilioSMS(
            account_sid=SID,
            auth_token="bench-token",
            from_number="+4759440000",
            base_url=provider.url,
            rate_limit=rate,
            concurrency=concurrency,
        )
        store = SQLiteStore(Path(tmp) / "dispatch.db")
        engine = recovery(count, store, channel)
        started = time.perf_counter()
        report = engine.run()
        elapsed = time.perf_counter() - started
        store.close()
        if report.counts["sent"] != count or provider.count() != count:
            sys.exit(f"dispatch: {dict(report.counts)}, {provider.count()} requests")
    return count / elapsed / bound


def requests_alone(concurrency: int, latency: float, seconds: float, in_process: bool) -> float:
    """The same provider, asked by ``concurrency`` threads posting with plain ``requests``
    as fast as it answers: the floor under the dispatch ratio (the provider's own time)."""
    import requests

    per_thread = max(10, int(seconds / latency))
    with BenchProvider(created, latency, in_process=in_process) as provider:
        url = f"{provider.url}/2010-04-01/Accounts/{SID}/Messages.json"

        def post_all() -> None:
            with requests.Session() as session:
                for _ in range(per_thread):
                    session.post(url, data={"To": "+14155550100", "Body": "x"}, auth=(SID, "t"))

        threads = [threading.Thread(target=post_all) for _ in range(concurrency)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
    return concurrency * per_thread / elapsed / (concurrency / latency)


def bench_dispatch(repeats: int, seconds: float, in_process: bool) -> None:
    latency, rate = 0.05, 1000.0
    where = "in this process" if in_process else "in a child process"
    print(
        "Recovery.run() through TwilioSMS, loopback provider answering after 50 ms"
        f" ({where}), rate {rate:g}/s"
    )
    for concurrency in (4, 8, 16):
        ratio = median_of(
            repeats, lambda c=concurrency: dispatch(c, rate, latency, seconds, in_process)
        )
        bound = min(rate, concurrency / latency)
        floor = requests_alone(concurrency, latency, seconds / 2, in_process)
        verdict(
            f"  concurrency {concurrency:>2}: {ratio * bound:6.1f} msg/s of {bound:5.0f}, "
            f"ratio {ratio:5.3f} (plain requests alone {floor:5.3f})",
            ratio,
            0.9,
            at_least=True,
        )


# -- shopify ----------------------------------------------------------------------------------
def _serve_shopify(count: int, pipe: Connection) -> None:
    """In a child process: a ``FakeShopify`` of ``count`` checkouts until told to stop."""
    from cartrescue_testing.fake_shopify import FakeShopify

    items = [checkout(n) for n in range(count)]
    with FakeShopify.from_checkouts(items, throttle=False) as fake:
        pipe.send((fake.shop, fake.token, fake.base_url))
        pipe.recv()


@contextmanager
def shopify_fake(count: int, in_process: bool) -> Iterator[tuple[str, str, str]]:
    """(shop, token, base URL) of a ``FakeShopify`` holding ``count`` checkouts: in a child
    process (a real platform's CPU is not ours), or with ``in_process`` in a thread here."""
    if in_process:
        from cartrescue_testing.fake_shopify import FakeShopify

        items = [checkout(n) for n in range(count)]
        with FakeShopify.from_checkouts(items, throttle=False) as fake:
            yield fake.shop, fake.token, fake.base_url
        return
    pipe, child = spawn(_serve_shopify, count)
    try:
        yield pipe.recv()
    finally:
        with suppress(OSError):
            pipe.send("stop")
        child.join(10)
        if child.is_alive():
            child.terminate()


def bench_shopify(count: int, repeats: int, in_process: bool) -> None:
    from cartrescue.connectors.shopify import ShopifyConnector

    fetches, fulls = [], []
    with shopify_fake(count, in_process) as (shop_name, token, base_url):
        for i in range(repeats):
            shop = ShopifyConnector(shop_name, token, base_url=base_url)
            fetches.append(timed(lambda s=shop: sum(1 for _ in s.abandoned_checkouts(None))))
            with tempfile.TemporaryDirectory() as tmp:
                store = SQLiteStore(Path(tmp) / f"shopify-{i}.db")
                engine = Recovery(
                    ShopifyConnector(shop_name, token, base_url=base_url),
                    [MemoryChannel("sms")],
                    store,
                    clock=FrozenClock(NOW),
                    shop=SHOP,
                )
                fulls.append(timed(engine.run))
                store.close()
    fetch_s, full_s = statistics.median(fetches), statistics.median(fulls)
    where = "in this process" if in_process else "in a child process"
    print(f"Shopify (FakeShopify {where}, no throttle), {count} checkouts")
    print(f"  fetch {fetch_s:.3f} s, full pass {full_s:.3f} s")
    verdict(f"  full pass / fetch                {full_s / fetch_s:6.2f}x", full_s / fetch_s, 2.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, 2 repeats")
    parser.add_argument("--checkouts", type=int, help="synthetic shop size (default 10000)")
    parser.add_argument("--shopify", type=int, help="FakeShopify size (default 10000)")
    parser.add_argument("--sizes", help="memory sizes, comma-separated (default 1k,10k,100k)")
    parser.add_argument("--repeats", type=int, help="repeats per figure (default 3)")
    parser.add_argument("--only", help=f"comma-separated parts to run: {','.join(ALL)}")
    parser.add_argument(
        "--provider-in-process",
        action="store_true",
        help="dispatch: run the fake provider in this process (its CPU then counts)",
    )
    parser.add_argument(
        "--shopify-in-process",
        action="store_true",
        help="shopify: run FakeShopify in this process (its CPU then counts)",
    )
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--traced", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child, args.traced)
        return 0
    repeats = args.repeats or (2 if args.quick else 3)
    count = args.checkouts or (2_000 if args.quick else 10_000)
    sizes = (
        [int(s) for s in args.sizes.split(",")]
        if args.sizes
        else ([1_000, 10_000] if args.quick else [1_000, 10_000, 100_000])
    )
    parts = args.only.split(",") if args.only else list(ALL)
    print(f"bench/engine.py: medians of {repeats}; Python {sys.version.split()[0]}")
    if "pass" in parts:
        bench_pass(count, repeats)
    if "breakdown" in parts:
        bench_breakdown(count)
    if "memory" in parts:
        bench_memory(sizes, 1 if args.quick else repeats)
    if "dispatch" in parts:
        bench_dispatch(repeats, 1.5 if args.quick else 3.0, args.provider_in_process)
    if "shopify" in parts:
        bench_shopify(
            args.shopify or (2_000 if args.quick else 10_000), repeats, args.shopify_in_process
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
