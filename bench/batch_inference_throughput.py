"""Batch inference benchmark: engine overhead and rate-limit accuracy against a local server.

1. Throughput: the same ``openai.AsyncOpenAI`` client sends N requests at a given
   concurrency, once as a bare ``asyncio.gather`` under a semaphore, once through
   the batch engine (limiter off, retries on, journal written per item).
   Target: engine / bare >= 0.9.
2. Rate limit: the server enforces L requests per window (answering 429 with the
   exact Retry-After beyond it, as a provider does) and the engine is configured
   with the same limit. Achieved rate is measured on the server's arrival log.
   Target: achieved >= 0.95 of the limit, with every 429 recovered (no failed item).
3. Faults: the server answers about a third of requests badly, in every way
   (malformed, truncated and wrong-shape JSON with status 200, HTML pages, 429
   with Retry-After, 5xx, hangs past the timeout, cut connections), the same
   faults for both clients: the engine, and a bare ``asyncio.gather`` relying on
   the openai SDK's own retries (``max_retries``). Target for the engine: every
   item ok or failed with a reason, nothing sent again after a success; the SDK
   row shows what its retry machinery leaves (it does not retry a 200 it cannot
   use, and its retries would bypass the engine's rate limiter).

The server is the test double in genai_assets_tests/batch_inference (a real HTTP
server on 127.0.0.1 with a fixed service time) in its own process, so the
figures measure the client side, not a model. Run from the repository root:

    PYTHONPATH=. python bench/batch_inference_throughput.py [--quick] [--sections faults]
"""

import argparse
import asyncio
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import openai
from openai.types.chat import ChatCompletion

from genai_assets.batch_inference.engine import BatchRetrySettings, Engine
from genai_assets.batch_inference.items import parse_lines
from genai_assets.batch_inference.limiter import RateLimiter
from genai_assets.batch_inference.results import ResultJournal
from genai_assets_tests.batch_inference.misbehaving_server import (
    ServerProcess,
    misbehave_on_a_third,
)

FAULT_TIMEOUT_S = 2.0


def make_items(count: int, tag: str):
    lines = [
        f'{{"id": "{tag}-{n}", "prompt": "{tag}-{n} How do I restore a vault snapshot?"}}'
        for n in range(count)
    ]
    return parse_lines(lines)


def client_for(
    server: ServerProcess, max_retries: int = 0, timeout_s: float | None = None
) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=server.base_url,
        api_key="bench",
        max_retries=max_retries,
        **({"timeout": timeout_s} if timeout_s else {}),
    )


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


async def engine_run(
    server, items, concurrency: int, work: Path, limiter=None, timeout_s: float | None = None
) -> Engine:
    async with client_for(server, timeout_s=timeout_s) as client:
        with ResultJournal(work / "progress.jsonl") as journal:
            engine = Engine(
                client=client,
                model="bench",
                journal=journal,
                limiter=limiter or RateLimiter(),
                retry=BatchRetrySettings(attempts=10, backoff_s=0.05, max_wait_s=1.0),
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


async def sdk_retries_gather(server, items, concurrency: int, max_retries: int) -> Counter:
    """Outcomes of a bare gather that relies on the SDK's retries: "ok" or why not."""
    async with client_for(server, max_retries, FAULT_TIMEOUT_S) as client:
        semaphore = asyncio.Semaphore(concurrency)

        async def one(item) -> str:
            async with semaphore:
                try:
                    response = await client.chat.completions.create(
                        model="bench", messages=list(item.messages), max_tokens=16
                    )
                except Exception as error:  # counted by type: what the SDK let through
                    return type(error).__name__
            if not isinstance(response, ChatCompletion):
                return "not a ChatCompletion (returned)"
            choices = getattr(response, "choices", None)
            if not choices or getattr(choices[0], "message", None) is None:
                return "no choices[0].message (returned)"
            return "ok"

        return Counter(await asyncio.gather(*(one(item) for item in items)))


def faults(args, work: Path) -> bool:
    count, attempts = args.fault_items, 6
    print(
        f"\n## Faults: {count} prompts, about a third of requests answered badly, "
        f"concurrency {args.concurrency}, {attempts} attempts per item, "
        f"timeout {FAULT_TIMEOUT_S:.0f} s"
    )
    print(
        "| client | requests | faults | items ok | items failed | failed by reason "
        "| sent again after success | wall s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    options = {"plan": misbehave_on_a_third, "retry_after_ms": 30, "hang_s": 5.0}
    items = make_items(count, "f")
    ok = True
    for client in ("engine", "sdk"):
        with ServerProcess(**options) as server:
            started = time.monotonic()
            if client == "engine":
                asyncio.run(
                    engine_run(
                        server, items, args.concurrency, work / "faults", None, FAULT_TIMEOUT_S
                    )
                )
                records = ResultJournal(work / "faults" / "progress.jsonl").load().values()
                outcomes = Counter(
                    "ok" if record["status"] == "ok" else record["error_type"] for record in records
                )
                ok = len(records) == count and all(
                    record["status"] == "ok" or record["error"] for record in records
                )
                label = "batch engine"
            else:
                outcomes = asyncio.run(
                    sdk_retries_gather(server, items, args.concurrency, attempts - 1)
                )
                label = f"gather, SDK max_retries={attempts - 1}"
            wall = time.monotonic() - started
        arrivals = server.arrivals
        oks = Counter(arrival.item for arrival in arrivals if arrival.action == "ok")
        again = sum(1 for arrival_count in oks.values() if arrival_count > 1)
        ok = ok and (client != "engine" or again == 0)
        failed = {reason: n for reason, n in sorted(outcomes.items()) if reason != "ok"}
        reasons = ", ".join(f"{reason} {n}" for reason, n in failed.items()) or "-"
        print(
            f"| {label} | {len(arrivals)} | "
            f"{sum(1 for arrival in arrivals if arrival.action != 'ok')} | {outcomes['ok']} "
            f"| {sum(failed.values())} | {reasons} | {again} | {wall:.1f} |"
        )
    print(
        "\nengine: every item ok or failed with a reason, none sent again after success: "
        f"{'PASS' if ok else 'FAIL'}"
    )
    return ok


SECTIONS = {"throughput": throughput, "rate": rate_limit, "faults": faults}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=800)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--delay-ms", type=float, default=200.0, help="server service time")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rate-limit", type=int, default=100, help="requests per window")
    parser.add_argument("--rate-window-s", type=float, default=5.0)
    parser.add_argument("--rate-windows", type=float, default=6.0, help="run length in windows")
    parser.add_argument("--fault-items", type=int, default=300, help="prompts of the fault run")
    parser.add_argument("--sections", nargs="+", choices=list(SECTIONS), default=list(SECTIONS))
    parser.add_argument("--quick", action="store_true", help="a shorter run")
    args = parser.parse_args()
    if args.quick:
        args.items, args.repeats, args.rate_windows = 320, 3, 3.0
    with tempfile.TemporaryDirectory() as folder:
        results = [SECTIONS[name](args, Path(folder)) for name in args.sections]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
