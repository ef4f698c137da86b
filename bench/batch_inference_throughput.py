"""Batch inference benchmark: engine overhead and rate-limit accuracy against a local server.

1. Throughput: the same ``openai.AsyncOpenAI`` client sends N requests at a given
   concurrency, once as a bare ``asyncio.gather`` under a semaphore, once through
   the batch engine (limiter off, retries on, journal written per item).
   Target: engine / bare >= 0.9.
2. Rate limit: the server enforces L requests per window (answering 429 with the
   exact Retry-After beyond it, as a provider does) and the engine is configured
   with the same limit. Achieved rate is measured on the server's arrival log.
   Target: achieved >= 0.95 of the limit, with every 429 recovered (no failed item).

The server is the test double in genai_assets_tests/batch_inference (a real HTTP
server on 127.0.0.1 with a fixed service time) in its own process, so the
figures measure the client side, not a model. Run from the repository root:

    PYTHONPATH=. python bench/batch_inference_throughput.py [--quick]
"""

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import openai

from genai_assets.batch_inference.engine import Engine, RetryPolicy
from genai_assets.batch_inference.items import parse_lines
from genai_assets.batch_inference.limiter import RateLimiter
from genai_assets.batch_inference.results import ResultJournal
from genai_assets_tests.batch_inference.misbehaving_server import ServerProcess


def make_items(count: int, tag: str):
    lines = [
        f'{{"id": "{tag}-{n}", "prompt": "{tag}-{n} How do I restore a vault snapshot?"}}'
        for n in range(count)
    ]
    return parse_lines(lines)


def client_for(server: ServerProcess) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=server.base_url, api_key="bench", max_retries=0)


async def bare_gather(server, items, concurrency: int) -> float:
    async with client_for(server) as client:
        semaphore = asyncio.Semaphore(concurrency)

        async def one(item):
            async with semaphore:
                return await client.chat.completions.create(
                    model="bench", messages=list(item.messages), max_tokens=16
                )

        started = time.monotonic()
        await asyncio.gather(*(one(item) for item in items))
        return time.monotonic() - started


async def engine_run(server, items, concurrency: int, work: Path, limiter=None) -> Engine:
    async with client_for(server) as client:
        with ResultJournal(work / "progress.jsonl") as journal:
            engine = Engine(
                client=client,
                model="bench",
                journal=journal,
                limiter=limiter or RateLimiter(),
                retry=RetryPolicy(max_attempts=10, backoff_base_s=0.05, backoff_max_s=1.0),
                concurrency=concurrency,
                defaults={"max_tokens": 16},
            )
            await engine.run(items)
    return engine


def _timed(function) -> tuple[float, float]:
    """Wall seconds and this process's CPU seconds of ``function()``."""
    wall, cpu = time.monotonic(), time.process_time()
    function()
    return time.monotonic() - wall, time.process_time() - cpu


def throughput(args, work: Path) -> bool:
    ideal = args.concurrency / (args.delay_ms / 1000)
    print(
        f"\n## Throughput: {args.items} requests, concurrency {args.concurrency}, "
        f"server service time {args.delay_ms:.0f} ms (ideal {ideal:.0f} req/s)"
    )
    print("| run | bare gather req/s | engine req/s | ratio | CPU ms/request bare | engine |")
    print("|---|---|---|---|---|---|")
    ratios = []
    with ServerProcess(delay_s=args.delay_ms / 1000) as server:
        asyncio.run(bare_gather(server, make_items(50, "warm"), args.concurrency))
        for run in range(args.repeats):
            bare_items = make_items(args.items, f"b{run}")
            engine_items = make_items(args.items, f"e{run}")

            def bare(items=bare_items):
                asyncio.run(bare_gather(server, items, args.concurrency))

            def ours(items=engine_items, run=run):
                asyncio.run(engine_run(server, items, args.concurrency, work / f"t{run}"))

            # Alternate which goes first, so warm-up and machine load do not favour one side.
            if run % 2:
                engine_t, bare_t = _timed(ours), _timed(bare)
            else:
                bare_t, engine_t = _timed(bare), _timed(ours)
            bare_rate, engine_rate = args.items / bare_t[0], args.items / engine_t[0]
            ratios.append(engine_rate / bare_rate)
            print(
                f"| {run + 1} | {bare_rate:.1f} | {engine_rate:.1f} | {ratios[-1]:.3f} "
                f"| {1000 * bare_t[1] / args.items:.2f} | {1000 * engine_t[1] / args.items:.2f} |"
            )
    median = sorted(ratios)[len(ratios) // 2]
    ok = median >= 0.9
    print(
        f"\nengine / bare gather: median {median:.3f} (min {min(ratios):.3f}, "
        f"max {max(ratios):.3f}; target >= 0.9): {'PASS' if ok else 'FAIL'}"
    )
    return ok


def rate_limit(args, work: Path) -> bool:
    limit, window = args.rate_limit, args.rate_window_s
    count = int(limit * args.rate_windows)
    print(
        f"\n## Rate limit: {limit} requests per {window} s window "
        f"({limit / window:.0f} req/s), {count} requests, concurrency {args.concurrency}; "
        "the server enforces the same limit"
    )
    with ServerProcess(delay_s=args.delay_ms / 1000, enforce_limit=(limit, window)) as server:
        limiter = RateLimiter(requests_per_period=limit, period_s=window)
        asyncio.run(
            engine_run(server, make_items(count, "r"), args.concurrency, work / "rate", limiter)
        )
    accepted = sorted(a.at for a in server.arrivals if a.action == "ok")
    rejected = sum(1 for a in server.arrivals if a.action == "429")
    records = ResultJournal(work / "rate" / "progress.jsonl").load()
    failed = sum(1 for record in records.values() if record["status"] != "ok")
    achieved = (len(accepted) - 1) / (accepted[-1] - accepted[0])
    most = max(sum(1 for t in accepted if start <= t < start + window) for start in accepted)
    ratio = achieved / (limit / window)
    print("| limit req/s | achieved req/s | ratio | most in any window | 429s | failed items |")
    print("|---|---|---|---|---|---|")
    print(
        f"| {limit / window:.1f} | {achieved:.2f} | {ratio:.3f} | {most} / {limit} "
        f"| {rejected} | {failed} |"
    )
    ok = ratio >= 0.95 and failed == 0 and len(records) == count
    print(
        f"\nachieved / limit {ratio:.3f} (target >= 0.95), every 429 recovered: "
        f"{failed == 0}: {'PASS' if ok else 'FAIL'}"
    )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=800)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--delay-ms", type=float, default=200.0, help="server service time")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rate-limit", type=int, default=100, help="requests per window")
    parser.add_argument("--rate-window-s", type=float, default=5.0)
    parser.add_argument("--rate-windows", type=float, default=6.0, help="run length in windows")
    parser.add_argument("--quick", action="store_true", help="a shorter run")
    args = parser.parse_args()
    if args.quick:
        args.items, args.repeats, args.rate_windows = 320, 3, 3.0
    with tempfile.TemporaryDirectory() as folder:
        results = [throughput(args, Path(folder)), rate_limit(args, Path(folder))]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
