"""The engine against a misbehaving local server (a test double, see misbehaving_server.py)."""

import asyncio
import json
import logging
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter

import httpx
import openai
import pytest

from genai_assets.automation.retries import RetrySettings, retry_after_from_headers
from genai_assets.batch_inference.engine import BatchRetrySettings
from genai_assets.batch_inference.items import parse_file
from genai_assets.batch_inference.responses import classify
from genai_assets.batch_inference.results import ResultJournal
from genai_assets.batch_inference.runner import (
    PROGRESS_FILE,
    RESULTS_FILE,
    BatchAlreadyRunningError,
    BatchSettings,
    ProgressLog,
    exclusive,
    run_batch_file,
    send_items,
)
from genai_assets_tests.batch_inference.misbehaving_server import (
    MisbehavingOpenAIServer,
    ServerProcess,
    client_factory,
    write_prompts,
)

FAST_RETRY = BatchRetrySettings(attempts=4, backoff_s=0.02, max_wait_s=0.2)
FAST_SETTINGS = BatchSettings(model="test-model", concurrency=4, retry=FAST_RETRY)


def fault_plan(item: str, attempt: int) -> str:
    """Deterministic faults by item number; see test_every_item_is_accounted_for..."""
    number = int(item.split("-")[1])
    if number == 199:
        return "500"  # never recovers
    if number % 25 == 0:
        return "400"  # permanent client error: no retry
    if number % 10 == 1 and attempt <= 2:
        return "429"
    if number % 10 == 3 and attempt <= 2:
        return "500" if attempt == 1 else "503"
    if number % 10 == 5 and attempt == 1:
        return "timeout"
    if number % 10 == 7 and attempt == 1:
        return "drop"
    if number % 20 == 9 and attempt == 1:
        return "cut"
    return "ok"


def test_every_item_is_accounted_for_in_order_under_faults(tmp_path):
    input_path = tmp_path / "prompts.jsonl"
    write_prompts(input_path, 200, malformed_after=(49, 149))
    settings = BatchSettings(
        model="test-model",
        concurrency=16,
        retry=FAST_RETRY,
        request_timeout_s=2.0,
        defaults={"max_tokens": 16},
        seed=0,
    )
    with MisbehavingOpenAIServer(fault_plan, retry_after_ms=30, hang_s=5.0) as server:
        report = run_batch_file(input_path, tmp_path / "work", client_factory(server), settings)

    rows = report.rows
    assert len(rows) == 202
    assert [row["line"] for row in rows] == list(range(1, 203))
    valid = [row for row in rows if row["error_type"] != "malformed_input"]
    assert [row["id"] for row in valid] == [f"item-{n:03d}" for n in range(200)]
    malformed = [row for row in rows if row["error_type"] == "malformed_input"]
    assert [row["line"] for row in malformed] == [51, 152]
    assert all(row["status"] == "failed" and "invalid JSON" in row["error"] for row in malformed)

    by_id = {row["id"]: row for row in valid}
    for number in range(200):
        row = by_id[f"item-{number:03d}"]
        if number == 199:
            assert row["status"] == "failed" and row["error_type"] == "server_error"
            assert row["attempts"] == 4 and "gave up after 4 attempts" in row["error"]
        elif number % 25 == 0:
            assert row["status"] == "failed" and row["status_code"] == 400
            assert row["attempts"] == 1
        else:
            assert row["status"] == "ok", row
            assert row["output"] == f"echo item-{number:03d} What is a Skyline vault?"
            assert row["input_tokens"] > 0 and row["output_tokens"] > 0
            expected_attempts = 3 if number % 10 in (1, 3) else 1
            if number % 10 in (5, 7) or number % 20 == 9:
                expected_attempts = 2
            assert row["attempts"] == expected_attempts, row

    # The server's own log: each item was sent exactly as often as the client says, and no
    # item that had succeeded was sent again.
    sent = server.items_sent()
    assert sent == Counter({row["id"]: row["attempts"] for row in valid})
    assert max(server.ok_items().values()) == 1
    summary = report.summary
    assert summary["items_ok"] == 200 - 8 - 1
    assert summary["items_failed"] == 8 + 1 + 2
    assert summary["items_malformed"] == 2
    assert summary["errors_this_run"]["rate_limited"] == 20 * 2
    assert summary["errors_this_run"]["timeout"] == 20 - 4  # 25, 75, 125, 175 answer 400
    assert summary["errors_this_run"]["connection_error"] == 20 + 10
    assert summary["retries_this_run"] == sum(sent.values()) - 200
    results_lines = (tmp_path / "work" / RESULTS_FILE).read_text().splitlines()
    assert [json.loads(line) for line in results_lines] == rows


def test_cancelled_run_then_rerun_sends_only_the_remaining_items(tmp_path):
    input_path = tmp_path / "prompts.jsonl"
    write_prompts(input_path, 200)
    work = tmp_path / "work"
    settings = BatchSettings(model="test-model", concurrency=8, retry=FAST_RETRY)
    items = parse_file(input_path)

    async def run_until_half_done(server):
        half = asyncio.Event()
        recorded = []

        def on_record(record):
            recorded.append(record)
            if len(recorded) >= 100:
                half.set()

        with ResultJournal(work / PROGRESS_FILE) as journal:
            task = asyncio.create_task(
                send_items(items, journal, client_factory(server), settings, on_record)
            )
            await half.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    with MisbehavingOpenAIServer(delay_s=0.01) as server:
        asyncio.run(run_until_half_done(server))
        first_sent = set(server.items_sent())
        recorded = set(ResultJournal(work / PROGRESS_FILE).load())
        assert 100 <= len(recorded) < 200
        in_flight_lost = first_sent - recorded
        assert len(in_flight_lost) <= settings.concurrency

        server.reset_log()
        report = run_batch_file(input_path, work, client_factory(server), settings)
        second_sent = server.items_sent()

    everything = {f"item-{n:03d}" for n in range(200)}
    assert set(second_sent) == everything - recorded
    assert set(second_sent.values()) == {1}
    assert report.summary["items_sent_this_run"] == 200 - len(recorded)
    assert report.summary["items_resumed"] == len(recorded)
    assert [row["id"] for row in report.rows] == sorted(everything)
    assert all(row["status"] == "ok" for row in report.rows)


def test_rerun_resends_failed_and_changed_items_only(tmp_path):
    input_path = tmp_path / "prompts.jsonl"
    lines = write_prompts(input_path, 20)
    work = tmp_path / "work"
    settings = BatchSettings(model="test-model", concurrency=4, retry=FAST_RETRY)
    failing_once = {"item-003"}

    def plan(item, attempt):
        return "400" if item in failing_once else "ok"

    with MisbehavingOpenAIServer(plan) as server:
        first = run_batch_file(input_path, work, client_factory(server), settings)
        assert first.summary["items_failed"] == 1
        # A crash mid-write leaves a torn last line in the journal.
        with (work / PROGRESS_FILE).open("a") as journal:
            journal.write('{"key": "item-0')
        # Item 5's prompt changes; item 3's failure is resent; the rest is done.
        lines[5] = json.dumps({"id": "item-005", "prompt": "item-005 A different question"})
        input_path.write_text("\n".join(lines) + "\n")
        failing_once.clear()
        server.reset_log()
        second = run_batch_file(input_path, work, client_factory(server), settings)
        assert set(server.items_sent()) == {"item-003", "item-005"}
        assert second.corrupt_journal_lines == 1
        assert second.summary["items_ok"] == 20
        assert second.rows[5]["output"] == "echo item-005 A different question"

        server.reset_log()
        third = run_batch_file(input_path, work, client_factory(server), settings)
        assert server.items_sent() == Counter()
        assert third.rows == second.rows


def test_two_runs_of_the_same_batch_cannot_overlap(tmp_path):
    input_path = tmp_path / "prompts.jsonl"
    write_prompts(input_path, 2)
    work = tmp_path / "work"
    with (
        exclusive(work),
        pytest.raises(BatchAlreadyRunningError, match="another run is working on .*work"),
    ):
        run_batch_file(input_path, work, lambda: None, FAST_SETTINGS)
    with MisbehavingOpenAIServer() as server:  # released: the next run goes ahead
        report = run_batch_file(input_path, work, client_factory(server), FAST_SETTINGS)
    assert report.summary["items_ok"] == 2


def test_non_json_answers_are_retried_then_recorded_on_the_item(tmp_path):
    """A proxy's HTML page, with status 200 or 502: retried, then a failure naming it."""
    input_path = tmp_path / "prompts.jsonl"
    write_prompts(input_path, 3)
    plans = {"item-000": ["html"], "item-001": ["502html", "ok"], "item-002": ["ok"]}

    def plan(item, attempt):
        return plans[item][min(attempt, len(plans[item])) - 1]

    with MisbehavingOpenAIServer(plan) as server:
        work = tmp_path / "work"
        report = run_batch_file(input_path, work, client_factory(server), FAST_SETTINGS)
    html, retried, ok = report.rows
    assert html["status"] == "failed" and html["error_type"] == "invalid_response"
    assert html["attempts"] == FAST_RETRY.attempts and html["status_code"] == 200
    assert html["error"].startswith(
        "invalid_response: the body is not valid JSON (Expecting value at char 0 of 2626); "
        "body (2626 bytes): <html><body>Bad gateway."
    )
    assert len(html["error"]) <= 500 and html["error"].endswith("... (gave up after 4 attempts)")
    assert retried["status"] == "ok" and retried["attempts"] == 2
    assert ok["status"] == "ok"
    assert report.summary["errors_this_run"] == {"invalid_response": 4, "server_error": 1}


def test_rate_limit_storm_is_recovered_by_honouring_retry_after(tmp_path):
    """The server enforces 20 requests per 0.5 s; the client has no limiter of its own."""
    input_path = tmp_path / "prompts.jsonl"
    write_prompts(input_path, 60)
    settings = BatchSettings(
        model="test-model",
        concurrency=16,
        retry=BatchRetrySettings(attempts=20, backoff_s=0.02, max_wait_s=0.2),
    )
    with MisbehavingOpenAIServer(enforce_limit=(20, 0.5)) as server:
        report = run_batch_file(input_path, tmp_path / "work", client_factory(server), settings)
    assert report.summary["items_ok"] == 60
    assert report.summary["errors_this_run"]["rate_limited"] > 0
    assert max(server.ok_items().values()) == 1


def test_client_side_limiter_keeps_requests_per_window_within_the_limit(tmp_path):
    """5 requests per 1 s window, measured on the arrival log of a server in its own process."""
    limit, period, count = 5, 1.0, 20
    input_path = tmp_path / "prompts.jsonl"
    write_prompts(input_path, count)
    settings = BatchSettings(
        model="test-model",
        concurrency=8,
        requests_per_period=limit,
        rate_period_s=period,
        retry=FAST_RETRY,
    )
    with ServerProcess() as server:
        report = run_batch_file(input_path, tmp_path / "work", client_factory(server), settings)
    assert report.summary["items_ok"] == count
    arrivals = sorted(arrival.at for arrival in server.arrivals)
    assert len(arrivals) == count
    # Arrival times are grant times plus send and scheduling delays, which on this loaded
    # 2-core machine differ by up to ~0.1-0.2 s between requests (the first one also opens
    # the connection). Against a 1 s window that can be one extra arrival, so windows are
    # measured 0.3 s shorter; the sustained rate is checked against the limit too. Without
    # the limiter all 20 requests land in one such window, and at twice the limit 8 do.
    window = period - 0.3
    most_in_a_window = max(
        sum(1 for t in arrivals if start <= t < start + window) for start in arrivals
    )
    assert most_in_a_window <= limit
    achieved = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])
    assert 0.85 * limit / period <= achieved <= 1.05 * limit / period


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after": "2"}, 2.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_headers(headers, expected):
    assert retry_after_from_headers(httpx.Headers(headers)) == expected


def test_retry_after_http_date_is_seconds_from_now():
    headers = httpx.Headers({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"})
    assert retry_after_from_headers(headers) == 0.0


def _status_error(status: int, headers: dict[str, str] | None = None) -> openai.APIStatusError:
    request = httpx.Request("POST", "http://127.0.0.1/v1/chat/completions")
    response = httpx.Response(status, headers=headers, request=request)
    return openai.OpenAI(api_key="x", base_url="http://127.0.0.1/v1")._make_status_error(
        "boom", body=None, response=response
    )


@pytest.mark.parametrize(
    ("status", "kind", "retryable"),
    [
        (429, "rate_limited", True),
        (500, "server_error", True),
        (503, "server_error", True),
        (408, "http_408", True),
        (400, "http_400", False),
        (401, "http_401", False),
        (404, "http_404", False),
        (422, "http_422", False),
    ],
)
def test_classify_status_errors(status, kind, retryable):
    failure = classify(_status_error(status, {"retry-after-ms": "100"}))
    assert (failure.kind, failure.retryable, failure.status_code) == (kind, retryable, status)
    assert failure.retry_after == 0.1


def test_backoff_grows_exponentially_with_jitter_and_honours_retry_after():
    policy = BatchRetrySettings(backoff_s=1.0, max_wait_s=8.0, max_retry_after_s=30)
    rng = random.Random(0)
    for attempt, step in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (6, 8.0)]:
        delays = [policy.delay(attempt, None, rng) for _ in range(200)]
        assert step / 2 <= min(delays) and max(delays) <= step
        assert max(delays) - min(delays) > step / 4  # jittered, not constant
    assert 3.0 <= policy.delay(1, 3.0, rng) <= 3.3
    assert 30 <= policy.delay(1, 500.0, rng) <= 33
    # The project's one retry vocabulary, validated once for every user of it.
    assert isinstance(policy, RetrySettings)
    with pytest.raises(ValueError, match="attempts must be at least 1"):
        BatchRetrySettings(attempts=0)


CRASHING_RUN = """
import sys
from pathlib import Path
import openai
from genai_assets.batch_inference.runner import BatchSettings, run_batch_file
base_url, input_path, work = sys.argv[1:4]
run_batch_file(
    Path(input_path),
    Path(work),
    lambda: openai.AsyncOpenAI(base_url=base_url, api_key="test", max_retries=0),
    BatchSettings(model="test-model", concurrency=4),
)
"""


def test_a_killed_process_loses_at_most_the_requests_in_flight(tmp_path):
    """SIGKILL mid-batch (no cleanup at all), then rerun: only unrecorded items are sent."""
    input_path = tmp_path / "prompts.jsonl"
    write_prompts(input_path, 200)
    work = tmp_path / "work"
    progress = work / PROGRESS_FILE
    with MisbehavingOpenAIServer(delay_s=0.02) as server:
        process = subprocess.Popen(
            [sys.executable, "-c", CRASHING_RUN, server.base_url, str(input_path), str(work)],
            env={**os.environ, "PYTHONPATH": os.getcwd()},
        )
        try:
            deadline = time.monotonic() + 60
            while not (progress.exists() and progress.read_text().count("\n") >= 60):
                assert process.poll() is None, "the batch process ended before it was killed"
                assert time.monotonic() < deadline, "the batch process made no progress"
                time.sleep(0.02)
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
        finally:
            if process.poll() is None:
                process.kill()
        first_sent = set(server.items_sent())
        recorded = set(ResultJournal(progress).load())
        assert 60 <= len(recorded) < 200
        assert len(first_sent - recorded) <= 4  # at most the requests in flight

        server.reset_log()
        report = run_batch_file(input_path, work, client_factory(server), FAST_SETTINGS)
        assert set(server.items_sent()) == {f"item-{n:03d}" for n in range(200)} - recorded
    assert [row["status"] for row in report.rows] == ["ok"] * 200


class ListHandler(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_progress_is_logged_about_ten_times_per_run():
    log = logging.getLogger("batch-progress-test")
    log.setLevel(logging.INFO)
    handler = ListHandler()
    log.addHandler(handler)
    try:
        progress = ProgressLog(log, total=95, every_s=3600)
        for index in range(95):
            progress({"status": "failed" if index % 10 == 0 else "ok"})
    finally:
        log.removeHandler(handler)
    messages = handler.messages
    assert len(messages) == 11  # every 9 items (95 // 10), and the last one
    assert messages[-1].startswith("95/95 items done (10 failed)")
