"""Dispatch throughput: HttpChannel.send_batch against a loopback fake provider.

The fake answers every request as Twilio's Messages API does (201 with a Message resource)
after a fixed latency (50 ms by default), from a child process (``--provider-in-process``:
from a thread of this one). For each configuration it sends a batch through
``TwilioSMS.send_batch`` and prints the messages per second achieved, the bound
min(rate limit, concurrency / latency), and their ratio (target >= 0.9).

    python bench/dispatch.py                     # the default table
    python bench/dispatch.py --rate 50 --concurrency 8 --messages 200
"""

from __future__ import annotations

import argparse
import sys
import time

from _provider import BenchProvider

from cartrescue.channels.twilio import TwilioSMS
from cartrescue.models import Content, Message, Receipt
from cartrescue_testing.contracts import Recorded, Reply

SID = "AC0123456789abcdef0123456789abcdef"
DEFAULT_TABLE = [(50.0, 8), (100.0, 4), (1000.0, 10), (20.0, 1)]


def created(request: Recorded) -> Reply:
    fields = request.form()
    return Reply(
        201,
        {
            "sid": "SM" + fields["Body"][-32:].rjust(32, "0"),
            "status": "queued",
            "to": fields["To"],
            "from": fields.get("From"),
            "body": fields["Body"],
        },
    )


def messages(count: int) -> list[Message]:
    return [
        Message(
            key=f"bench-{i}:1:sms",
            channel="sms",
            to=f"+47912{i % 100000:05d}",
            checkout_id=f"bench-{i}",
            step=1,
            locale="en",
            content=Content(text=f"Your cart is waiting: https://shop.example/r/{i:032d}"),
        )
        for i in range(count)
    ]


def run(rate: float, concurrency: int, count: int, latency: float, in_process: bool) -> float:
    with BenchProvider(created, latency, in_process=in_process) as provider:
        channel = TwilioSMS(
            account_sid=SID,
            auth_token="bench-token",
            from_number="+4759440000",
            base_url=provider.url,
            rate_limit=rate,
            concurrency=concurrency,
        )
        batch = messages(count)
        started = time.perf_counter()
        results = channel.send_batch(batch)
        elapsed = time.perf_counter() - started
        channel.close()
        failed = [r for r in results if not isinstance(r, Receipt)]
        if failed or provider.count() != count:
            sys.exit(f"{len(failed)} failed, {provider.count()} requests: {failed[:3]}")
    return count / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, help="rate limit, messages per second")
    parser.add_argument("--concurrency", type=int, help="requests in flight")
    parser.add_argument("--messages", type=int, help="messages per run (default: ~3 s worth)")
    parser.add_argument("--latency", type=float, default=0.05, help="provider latency, seconds")
    parser.add_argument(
        "--provider-in-process",
        action="store_true",
        help="run the fake provider in this process (its CPU then counts)",
    )
    args = parser.parse_args()
    table = (
        [(args.rate or 50.0, args.concurrency or 8)]
        if args.rate or args.concurrency
        else DEFAULT_TABLE
    )
    worst = float("inf")
    print(f"provider latency {args.latency * 1000:.0f} ms, loopback, TwilioSMS.send_batch")
    for rate, concurrency in table:
        bound = min(rate, concurrency / args.latency)
        count = args.messages or max(40, int(bound * 3))
        achieved = run(rate, concurrency, count, args.latency, args.provider_in_process)
        ratio = achieved / bound
        worst = min(worst, ratio)
        print(
            f"rate_limit={rate:g}/s concurrency={concurrency} messages={count}: "
            f"{achieved:.1f} msg/s; bound min({rate:g}, {concurrency}/{args.latency:g}) = "
            f"{bound:.1f}; ratio {ratio:.3f}"
        )
    print(f"worst ratio {worst:.3f} (target >= 0.9): {'OK' if worst >= 0.9 else 'BELOW TARGET'}")
    return 0 if worst >= 0.9 else 1


if __name__ == "__main__":
    raise SystemExit(main())
