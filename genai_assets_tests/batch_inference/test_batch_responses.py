"""Answers the client cannot use: retried, then failed items with their reason, never a crash.

The server is the test double in misbehaving_server.py (a real HTTP server on
127.0.0.1 standing in for an LLM API, which cannot misbehave on demand).
"""

import asyncio
import json
import time
from collections import Counter

import pytest

from genai_assets.batch_inference.engine import BatchRetrySettings
from genai_assets.batch_inference.items import parse_file
from genai_assets.batch_inference.responses import Completion, Failure, parse_completion
from genai_assets.batch_inference.results import ResultJournal
from genai_assets.batch_inference.runner import BatchSettings, run_batch_file, send_items
from genai_assets_tests.batch_inference.misbehaving_server import (
    BAD_BODIES,
    FAULTS,
    MisbehavingOpenAIServer,
    client_factory,
    misbehave_on_a_third,
    write_prompts,
)

FAST_RETRY = BatchRetrySettings(attempts=4, backoff_s=0.02, max_wait_s=0.2)
FAST_SETTINGS = BatchSettings(model="test-model", concurrency=4, retry=FAST_RETRY, seed=0)
COMPLETION = {
    "choices": [{"message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    "model": "m",
}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (BAD_BODIES["badjson"], "the body is not valid JSON (Expecting property name enclosed"),
        (BAD_BODIES["truncated"], "the body is not valid JSON (Unterminated string"),
        (BAD_BODIES["wrongshape"], "not a chat completion (choices.0.message: Field required)"),
        (BAD_BODIES["nochoices"], "not a chat completion (choices: List should have at least 1"),
        (b"", "the body is not valid JSON (Expecting value at char 0 of 0); empty body"),
        (b'{"choices": "\xff"}', "the body is not UTF-8 (invalid start byte)"),
        (b"[1, 2]", "not a chat completion (a JSON list)"),
        (b"null", "not a chat completion (a JSON NoneType)"),
        (
            json.dumps({"choices": [{"message": {"content": 7}}]}).encode(),
            "not a chat completion (choices.0.message.content: Input should be a valid string)",
        ),
        (
            json.dumps({**COMPLETION, "usage": {"total_tokens": "many"}}).encode(),
            "not a chat completion (usage.total_tokens: Input should be a valid integer",
        ),
    ],
)
def test_unusable_bodies_are_retryable_failures_naming_the_reason(body, reason):
    failure = parse_completion(200, body)
    assert isinstance(failure, Failure)
    assert (failure.kind, failure.retryable, failure.status_code) == ("invalid_response", True, 200)
    assert failure.message.startswith(reason), failure.message
    if body:
        assert f"; body ({len(body)} bytes): " in failure.message


def test_a_chat_completion_is_parsed_with_only_the_fields_a_row_uses():
    completion = parse_completion(200, json.dumps(COMPLETION).encode())
    assert isinstance(completion, Completion)
    assert completion.output == "hi" and completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.total_tokens == 4
    # No id, created or object, and a finish_reason outside OpenAI's list: still usable.
    minimal = {"choices": [{"message": {"content": None}, "finish_reason": "abort"}]}
    completion = parse_completion(200, json.dumps(minimal).encode())
    assert isinstance(completion, Completion)
    assert completion.output == "" and completion.usage is None


@pytest.mark.parametrize("action", [*BAD_BODIES, "html"])
def test_an_unusable_200_is_retried_and_the_item_succeeds(tmp_path, action):
    input_path = tmp_path / "prompts.jsonl"
    write_prompts(input_path, 3)

    def plan(item, attempt):
        return action if item == "item-001" and attempt == 1 else "ok"

    with MisbehavingOpenAIServer(plan) as server:
        work = tmp_path / "work"
        report = run_batch_file(input_path, work, client_factory(server), FAST_SETTINGS)
    assert [row["status"] for row in report.rows] == ["ok", "ok", "ok"]
    assert [row["attempts"] for row in report.rows] == [1, 2, 1]
    assert report.rows[1]["output"] == "echo item-001 What is a Skyline vault?"
    assert report.summary["errors_this_run"] == {"invalid_response": 1}
    assert server.ok_items() == Counter({"item-000": 1, "item-001": 1, "item-002": 1})


def test_an_item_that_never_gets_a_usable_answer_fails_alone_with_its_reason(tmp_path):
    input_path = tmp_path / "prompts.jsonl"
    write_prompts(input_path, 10)

    def plan(item, attempt):
        return "truncated" if item == "item-004" else "ok"

    with MisbehavingOpenAIServer(plan) as server:
        work = tmp_path / "work"
        report = run_batch_file(input_path, work, client_factory(server), FAST_SETTINGS)
    failed = report.rows[4]
    assert failed["status"] == "failed" and failed["error_type"] == "invalid_response"
    assert failed["attempts"] == 4 and failed["status_code"] == 200
    assert failed["error"].startswith("invalid_response: the body is not valid JSON (Unterminated")
    assert failed["error"].endswith("(gave up after 4 attempts)")
    assert [row["status"] for row in report.rows] == ["ok"] * 4 + ["failed"] + ["ok"] * 5
    assert server.items_sent()["item-004"] == 4


def test_a_bug_outside_the_responses_stops_the_batch_with_its_own_error(tmp_path):
    """Not "unhandled errors in a TaskGroup": the error a person can act on."""
    input_path = tmp_path / "prompts.jsonl"
    write_prompts(input_path, 5)
    items = parse_file(input_path)

    def broken_progress_display(record):
        raise ValueError(f"progress display cannot show {record['key']}")

    async def run(server):
        with ResultJournal(tmp_path / "progress.jsonl") as journal:
            factory = client_factory(server)
            await send_items(items, journal, factory, FAST_SETTINGS, broken_progress_display)

    with (
        MisbehavingOpenAIServer() as server,
        pytest.raises(ValueError, match="progress display cannot show item-00"),
    ):
        asyncio.run(run(server))


NEVER_USABLE = {"item-050": "badjson", "item-150": "truncated", "item-250": "wrongshape"}
REASONS = {
    "badjson": "the body is not valid JSON",
    "truncated": "the body is not valid JSON",
    "wrongshape": "not a chat completion (choices.0.message: Field required)",
}


def a_third_misbehave(item: str, attempt: int) -> str:
    """About a third of requests get a fault; three items never get a usable answer."""
    return NEVER_USABLE.get(item) or misbehave_on_a_third(item, attempt)


def test_300_prompts_against_a_server_that_misbehaves_on_a_third_of_requests(tmp_path):
    input_path = tmp_path / "prompts.jsonl"
    write_prompts(input_path, 300)
    settings = BatchSettings(
        model="test-model",
        concurrency=16,
        retry=BatchRetrySettings(attempts=6, backoff_s=0.02, max_wait_s=0.2),
        request_timeout_s=2.0,
        defaults={"max_tokens": 16},
        seed=0,
    )
    started = time.monotonic()
    with MisbehavingOpenAIServer(a_third_misbehave, retry_after_ms=30, hang_s=5.0) as server:
        report = run_batch_file(input_path, tmp_path / "work", client_factory(server), settings)
    wall_s = time.monotonic() - started

    actions = Counter(arrival.action for arrival in server.arrivals)
    assert set(actions) == {"ok", *FAULTS}  # every fault happened
    faults = sum(actions.values()) - actions["ok"] - 6 * len(NEVER_USABLE)
    assert 0.25 < faults / (sum(actions.values()) - 6 * len(NEVER_USABLE)) < 0.42

    rows = report.rows
    assert [row["line"] for row in rows] == list(range(1, 301))
    assert [row["id"] for row in rows] == [f"item-{n:03d}" for n in range(300)]
    by_item: dict[str, list[str]] = {}
    for arrival in sorted(server.arrivals, key=lambda arrival: arrival.attempt):
        by_item.setdefault(arrival.item, []).append(arrival.action)
    for row in rows:
        answers = by_item[row["id"]]
        assert len(answers) == row["attempts"], row  # the client's count is the server's
        if row["status"] == "ok":
            # One successful answer, the last request of the item: nothing sent after it.
            assert answers.count("ok") == 1 and answers[-1] == "ok", (row, answers)
            assert row["output"] == f"echo {row['id']} What is a Skyline vault?"
        else:
            assert row["status"] == "failed" and "ok" not in answers, (row, answers)
            assert row["attempts"] == 6 and row["error"].endswith("(gave up after 6 attempts)")
        if row["id"] in NEVER_USABLE:
            assert row["status"] == "failed" and row["error_type"] == "invalid_response"
            assert REASONS[NEVER_USABLE[row["id"]]] in row["error"]

    summary = report.summary
    assert summary["items_ok"] + summary["items_failed"] == 300
    assert summary["items_ok"] >= 295
    assert set(summary["errors_this_run"]) >= {
        "invalid_response",
        "rate_limited",
        "server_error",
        "timeout",
        "connection_error",
    }
    assert summary["attempts_this_run"] == sum(actions.values())
    print(f"300 prompts, {sum(actions.values())} requests, {wall_s:.1f} s")
