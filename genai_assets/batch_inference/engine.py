"""The async engine: send items through an ``openai.AsyncOpenAI`` client, record each outcome.

A fixed pool of ``concurrency`` workers takes items in input order. Each
attempt first waits for the :class:`~genai_assets.batch_inference.limiter.RateLimiter`.
429, 408, 409 and 5xx responses, timeouts, dropped connections and 2xx
answers whose body is not a usable chat completion (see
:mod:`~genai_assets.batch_inference.responses`) are retried with exponential
backoff and jitter; a ``retry-after-ms`` / ``retry-after`` header on the error
response sets the wait instead (and, for a 429, holds every worker for that
long). Any other API error (400, 401, 404, ...) is recorded on the item without
a retry. Every final outcome goes to the journal at once. Nothing a response
contains can stop the batch; only a bug or a journal that cannot be written
does, and then with that error itself.

The retry loop is the engine's own, with the SDK's ``max_retries=0``: the
SDK's retries see only status codes and connections (measured in
``bench/batch_inference_throughput.py --sections faults``: with
``max_retries=5``, 56 of 300 items got an unusable 200 it did not retry), and
they would neither pass each attempt through the rate limiter nor hold the
other workers on a 429. tenacity (which the project uses for plain in-process
retries, :func:`genai_assets.automation.retries.retry_transient`) would need
the same limiter, Retry-After and attempt bookkeeping in callbacks around it,
so the loop would be no shorter and harder to follow.
"""

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import openai

from genai_assets.automation.retries import RetrySettings
from genai_assets.batch_inference.items import BatchItem
from genai_assets.batch_inference.limiter import RateLimiter, estimate_tokens
from genai_assets.batch_inference.responses import (
    Completion,
    Failure,
    classify,
    parse_completion,
)
from genai_assets.batch_inference.results import STATUS_FAILED, STATUS_OK, ResultJournal


@dataclass(frozen=True)
class BatchRetrySettings(RetrySettings):
    """The project's :class:`RetrySettings` with the engine's own bound on Retry-After.

    ``max_wait_s`` bounds the exponential backoff; a server's Retry-After is
    honoured up to ``max_retry_after_s`` instead, and also holds the other
    workers on a 429 (see :meth:`Engine._process`).
    """

    attempts: int = 6
    backoff_s: float = 1.0
    max_wait_s: float = 60.0
    max_retry_after_s: float = 120.0

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to wait after failed ``attempt`` (1-based).

        With a Retry-After the wait is that long plus up to 10% jitter, so that
        workers told the same time do not all return at once; without one it is
        "equal jitter" exponential backoff: half the exponential step plus a
        random part of the other half.
        """
        if retry_after is not None:
            wait = min(retry_after, self.max_retry_after_s)
            return wait + rng.uniform(0, 0.1 * wait)
        step = min(self.max_wait_s, self.backoff_s * 2 ** (attempt - 1))
        return step / 2 + rng.uniform(0, step / 2)


@dataclass
class EngineStats:
    """What one engine run did, for metadata and the benchmark."""

    items: int = 0
    attempts: int = 0
    errors: Counter = field(default_factory=Counter)
    latencies_s: list[float] = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0

    @property
    def wall_s(self) -> float:
        """Seconds from the first request to the last outcome."""
        return max(0.0, self.finished - self.started)

    @property
    def retries(self) -> int:
        """Attempts beyond the first, over all items."""
        return self.attempts - self.items


@dataclass
class Engine:
    """Sends batch items through one async client under one limiter and retry policy.

    Attributes:
        client: The ``openai.AsyncOpenAI`` client (its own ``max_retries`` should be 0).
        model: The model name sent with every request.
        journal: Where each final outcome is appended (an open :class:`ResultJournal`).
        limiter: Requests/tokens per period; an unlimited one by default.
        retry: The retry policy.
        concurrency: Requests in flight at most.
        defaults: Sampling parameters for items that set none (e.g. ``max_tokens``).
        request_timeout_s: Per-request timeout; ``None`` keeps the client's.
        rng: Random source for jitter (seeded in tests).
        on_record: Called with each journal record after it is written.
    """

    client: openai.AsyncOpenAI
    model: str
    journal: ResultJournal
    limiter: RateLimiter = field(default_factory=RateLimiter)
    retry: BatchRetrySettings = field(default_factory=BatchRetrySettings)
    concurrency: int = 8
    defaults: dict[str, Any] = field(default_factory=dict)
    request_timeout_s: float | None = None
    rng: random.Random = field(default_factory=random.Random)
    on_record: Callable[[dict[str, Any]], None] | None = None
    stats: EngineStats = field(default_factory=EngineStats)
    _create: Any = field(default=None, init=False, repr=False)

    async def run(self, items: Sequence[BatchItem]) -> EngineStats:
        """Send every item (all must be valid) and journal each outcome."""
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {self.concurrency}")
        invalid = [item.line for item in items if not item.is_valid]
        if invalid:
            raise ValueError(f"malformed items cannot be sent (lines {invalid[:10]})")
        # The raw-response form hands back the body unparsed, for parse_completion. The
        # client imports its chat resources on first use (most of a second on a busy
        # machine): do it now, not while the first granted requests wait behind it.
        self._create = self.client.chat.completions.with_raw_response.create
        self.stats = EngineStats(started=time.monotonic())
        pending = iter(items)
        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(min(self.concurrency, len(items))):
                    group.create_task(self._worker(pending))
        except ExceptionGroup as errors:
            # Only a bug or an unwritable journal ends a worker (the others are then
            # cancelled): raise that error, not "unhandled errors in a TaskGroup".
            raise errors.exceptions[0] from errors
        finally:
            self.stats.finished = time.monotonic()
        return self.stats

    async def _worker(self, pending: Any) -> None:
        for item in pending:  # one shared iterator: each item is taken by exactly one worker
            record = await self._process(item)
            self.journal.append(record)
            self.stats.items += 1
            if self.on_record is not None:
                self.on_record(record)

    async def _send(self, item: BatchItem, params: dict[str, Any]) -> Completion | Failure:
        """One attempt: the completion, or the failure (an API error or an unusable body)."""
        try:
            raw = await self._create(
                model=self.model,
                messages=list(item.messages),
                **params,
                **({"timeout": self.request_timeout_s} if self.request_timeout_s else {}),
            )
        except openai.APIError as error:
            return classify(error)
        return parse_completion(raw.status_code, raw.content)

    async def _process(self, item: BatchItem) -> dict[str, Any]:
        params = item.request_params(self.defaults)
        estimate = estimate_tokens(item.messages, params.get("max_tokens"))
        first_start = time.monotonic()
        for attempt in range(1, self.retry.attempts + 1):
            self.stats.attempts += 1
            grant = await self.limiter.acquire(estimate)
            start = time.monotonic()
            outcome = await self._send(item, params)
            latency = time.monotonic() - start
            if isinstance(outcome, Completion):
                usage = outcome.usage
                if usage is not None and usage.total_tokens is not None:
                    grant.settle(usage.total_tokens)
                self.stats.latencies_s.append(latency)
                result = {
                    "status": STATUS_OK,
                    "output": outcome.output,
                    "finish_reason": outcome.choices[0].finish_reason,
                    "input_tokens": usage.prompt_tokens if usage is not None else None,
                    "output_tokens": usage.completion_tokens if usage is not None else None,
                    "response_model": outcome.model,
                }
                break
            self.stats.errors[outcome.kind] += 1
            if outcome.kind == "rate_limited":
                grant.settle(0)  # a rejected request does not count against the tokens
                if outcome.retry_after is not None:
                    self.limiter.pause_for(min(outcome.retry_after, self.retry.max_retry_after_s))
            result = {
                "status": STATUS_FAILED,
                "error": outcome.describe(attempt),
                "error_type": outcome.kind,
                "status_code": outcome.status_code,
            }
            if not outcome.retryable or attempt == self.retry.attempts:
                break
            await asyncio.sleep(self.retry.delay(attempt, outcome.retry_after, self.rng))
        return self._record(
            item,
            attempts=attempt,
            latency_s=latency,
            elapsed_s=time.monotonic() - first_start,
            **result,
        )

    def _record(self, item: BatchItem, **outcome: Any) -> dict[str, Any]:
        record: dict[str, Any] = {
            "key": item.key,
            "id": item.id,
            "line": item.line,
            "fingerprint": item.fingerprint(self.model, self.defaults),
            "model": self.model,
            "output": None,
            "finish_reason": None,
            "error": None,
            "error_type": None,
            "status_code": None,
            "input_tokens": None,
            "output_tokens": None,
        }
        record.update(outcome)
        record["latency_s"] = round(record["latency_s"], 4)
        record["elapsed_s"] = round(record["elapsed_s"], 4)
        record["completed_at"] = datetime.now(UTC).isoformat()
        return record
