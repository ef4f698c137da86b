"""Run one input file end to end: parse, skip what is done, send the rest, assemble, summarise.

The working folder keeps two files: ``progress.jsonl``, the journal that makes
a rerun resumable, and ``results.jsonl``, the final ordered results written
when every item has an outcome.
"""

import asyncio
import fcntl
import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai

from genai_assets.batch_inference.engine import BatchRetrySettings, Engine
from genai_assets.batch_inference.items import BatchItem, parse_file
from genai_assets.batch_inference.limiter import RateLimiter
from genai_assets.batch_inference.pricing import Price
from genai_assets.batch_inference.results import (
    ResultJournal,
    assemble_rows,
    is_done,
    write_rows,
)
from genai_assets.batch_inference.stats import summarize

PROGRESS_FILE = "progress.jsonl"
RESULTS_FILE = "results.jsonl"
LOCK_FILE = ".lock"
MALFORMED_LOGGED = 20


class BatchAlreadyRunningError(RuntimeError):
    """Another process is running the same batch (same working folder)."""


@contextmanager
def exclusive(work_dir: Path) -> Iterator[None]:
    """Hold the working folder's lock, so two runs never send and journal the same items."""
    work_dir.mkdir(parents=True, exist_ok=True)
    with (work_dir / LOCK_FILE).open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            raise BatchAlreadyRunningError(
                f"another run is working on {work_dir} (its lock is held); wait for it to "
                "finish or stop it"
            ) from error
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass(frozen=True)
class BatchSettings:
    """How to run a batch; see the asset's config for each field's meaning."""

    model: str
    concurrency: int = 8
    requests_per_period: int | None = None
    tokens_per_period: int | None = None
    rate_period_s: float = 60.0
    retry: BatchRetrySettings = field(default_factory=BatchRetrySettings)
    defaults: dict[str, Any] = field(default_factory=dict)
    request_timeout_s: float | None = None
    retry_failed_items: bool = True
    seed: int | None = None


@dataclass
class BatchReport:
    """The outcome of :func:`run_batch_file`."""

    rows: list[dict[str, Any]]
    summary: dict[str, Any]
    results_path: Path
    progress_path: Path
    malformed: list[BatchItem]
    ignored_keys: list[str]
    corrupt_journal_lines: int


class ProgressLog:
    """Logs progress about ten times per run, and at least every ``every_s`` seconds."""

    def __init__(
        self, log: logging.Logger | logging.LoggerAdapter, total: int, every_s: float = 60.0
    ) -> None:
        self.log, self.total, self.every_s = log, total, every_s
        self.step = max(1, total // 10)
        self.done = self.failed = 0
        self.started = self.last = time.monotonic()

    def __call__(self, record: dict[str, Any]) -> None:
        """Count one recorded outcome; log when a step or the interval has passed."""
        self.done += 1
        self.failed += record["status"] != "ok"
        now = time.monotonic()
        if self.done % self.step and now - self.last < self.every_s and self.done < self.total:
            return
        self.last = now
        self.log.info(
            "%d/%d items done (%d failed), %.1f items/s",
            self.done,
            self.total,
            self.failed,
            self.done / max(now - self.started, 1e-9),
        )


def plan(
    items: list[BatchItem], journal_records: dict[str, dict[str, Any]], settings: BatchSettings
) -> list[BatchItem]:
    """The valid items a run must send: those without a settled outcome for the same request."""
    return [
        item
        for item in items
        if item.is_valid
        and not is_done(
            journal_records.get(item.key),
            item.fingerprint(settings.model, settings.defaults),
            retry_failed_items=settings.retry_failed_items,
        )
    ]


async def send_items(
    todo: list[BatchItem],
    journal: ResultJournal,
    client_factory: Callable[[], openai.AsyncOpenAI],
    settings: BatchSettings,
    on_record: Callable[[dict[str, Any]], None] | None = None,
) -> Engine:
    """Send ``todo`` through a fresh client, closed afterwards; returns the engine (its stats)."""
    async with client_factory() as client:
        engine = Engine(
            client=client,
            model=settings.model,
            journal=journal,
            limiter=RateLimiter(
                settings.requests_per_period, settings.tokens_per_period, settings.rate_period_s
            ),
            retry=settings.retry,
            concurrency=settings.concurrency,
            defaults=settings.defaults,
            request_timeout_s=settings.request_timeout_s,
            rng=random.Random(settings.seed),
            on_record=on_record,
        )
        await engine.run(todo)
    return engine


def run_batch_file(
    input_path: Path,
    work_dir: Path,
    client_factory: Callable[[], openai.AsyncOpenAI],
    settings: BatchSettings,
    price: Price | None = None,
    log: logging.Logger | logging.LoggerAdapter | None = None,
) -> BatchReport:
    """Run (or resume) the batch in ``input_path``, keeping state in ``work_dir``.

    Raises:
        BatchAlreadyRunningError: another process holds ``work_dir``.
    """
    with exclusive(work_dir):
        return _run_batch_file(input_path, work_dir, client_factory, settings, price, log)


def _run_batch_file(
    input_path: Path,
    work_dir: Path,
    client_factory: Callable[[], openai.AsyncOpenAI],
    settings: BatchSettings,
    price: Price | None,
    log: logging.Logger | logging.LoggerAdapter | None,
) -> BatchReport:
    log = log or logging.getLogger(__name__)
    items = parse_file(input_path)
    malformed = [item for item in items if not item.is_valid]
    for item in malformed[:MALFORMED_LOGGED]:
        log.warning("%s: %s", input_path.name, item.error)
    if len(malformed) > MALFORMED_LOGGED:
        log.warning(
            "%s: %d more malformed lines (see the results)",
            input_path.name,
            len(malformed) - MALFORMED_LOGGED,
        )
    ignored = sorted({key for item in items for key in item.ignored_keys})
    if ignored:
        log.warning("%s: ignoring unknown keys %s", input_path.name, ignored)

    journal = ResultJournal(work_dir / PROGRESS_FILE)
    todo = plan(items, journal.load(), settings)
    valid = sum(1 for item in items if item.is_valid)
    log.info(
        "%s: %d items (%d malformed); %d to send, %d already done",
        input_path.name,
        len(items),
        len(malformed),
        len(todo),
        valid - len(todo),
    )
    with journal:
        engine = asyncio.run(
            send_items(todo, journal, client_factory, settings, ProgressLog(log, len(todo)))
        )
    records = journal.load()
    rows = assemble_rows(items, records)
    results_path = write_rows(rows, work_dir / RESULTS_FILE)
    stats = engine.stats
    summary = summarize(
        rows,
        sent_this_run=stats.items,
        attempts_this_run=stats.attempts,
        errors_this_run=dict(stats.errors),
        latencies_this_run_s=stats.latencies_s,
        wall_s=stats.wall_s,
        price=price,
    )
    return BatchReport(
        rows=rows,
        summary=summary,
        results_path=results_path,
        progress_path=journal.path,
        malformed=malformed,
        ignored_keys=ignored,
        corrupt_journal_lines=journal.corrupt_lines,
    )
