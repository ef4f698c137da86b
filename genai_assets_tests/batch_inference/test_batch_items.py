import importlib.metadata
import json

import pytest

from genai_assets.batch_inference.items import parse_file, parse_line, parse_lines
from genai_assets.batch_inference.pricing import (
    ModelPrice,
    load_price_table,
    maintained_price,
    resolve_price,
)
from genai_assets.batch_inference.stats import percentile, summarize


def test_prompt_becomes_one_user_message_with_its_parameters():
    item = parse_line(json.dumps({"id": 7, "prompt": "hi", "max_tokens": 5}), 3)
    assert item.is_valid and item.id == "7" and item.line == 3
    assert item.messages == ({"role": "user", "content": "hi"},)
    assert item.request_params({"max_tokens": 64, "temperature": 0.2}) == {
        "max_tokens": 5,
        "temperature": 0.2,
    }


def test_messages_are_sent_as_given():
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    item = parse_line(json.dumps({"id": "a", "messages": messages, "temperature": 0}), 1)
    assert item.is_valid and list(item.messages) == messages
    assert item.params == {"temperature": 0}


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"id": "a", "prompt": "x"', "invalid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"prompt": "x"}', "'id' must be"),
        ('{"id": true, "prompt": "x"}', "'id' must be"),
        ('{"id": "a"}', "exactly one of 'prompt' or 'messages'"),
        ('{"id": "a", "prompt": "x", "messages": []}', "exactly one of"),
        ('{"id": "a", "prompt": "  "}', "'prompt' must be a non-empty string"),
        ('{"id": "a", "messages": []}', "non-empty list"),
        ('{"id": "a", "messages": [{"role": "robot", "content": "x"}]}', "role 'robot'"),
        ('{"id": "a", "messages": [{"role": "user"}]}', "non-empty 'content'"),
        ('{"id": "a", "prompt": "x", "max_tokens": 0}', "'max_tokens' must be a positive"),
        ('{"id": "a", "prompt": "x", "max_tokens": "10"}', "'max_tokens' must be a positive"),
        ('{"id": "a", "prompt": "x", "temperature": 3}', "'temperature' must be a number"),
        ('{"id": "a", "prompt": "x", "top_p": "high"}', "'top_p' must be a number"),
        ('{"id": "a", "prompt": "x", "stop": [1]}', "'stop' must be"),
    ],
)
def test_malformed_lines_become_failed_items_naming_line_and_reason(text, reason):
    item = parse_line(text, 12)
    assert not item.is_valid
    assert item.error.startswith("line 12: ")
    assert reason in item.error
    assert item.key == "line:12"


def test_parse_lines_keeps_every_line_in_order_and_flags_duplicates():
    lines = [
        '{"id": "a", "prompt": "one"}',
        "",
        "not json",
        '{"id": "b", "prompt": "two", "category": "x"}',
        '{"id": "a", "prompt": "again"}',
    ]
    items = parse_lines(lines)
    assert [item.line for item in items] == [1, 3, 4, 5]
    assert [item.is_valid for item in items] == [True, False, True, False]
    assert "duplicate id 'a' (first on line 1)" in items[3].error
    assert items[2].ignored_keys == ("category",)


def test_fingerprint_changes_with_prompt_model_and_parameters():
    base = parse_line('{"id": "a", "prompt": "x"}', 1)
    other_prompt = parse_line('{"id": "a", "prompt": "y"}', 1)
    fingerprint = base.fingerprint("m", {"max_tokens": 8})
    assert fingerprint == base.fingerprint("m", {"max_tokens": 8})
    assert fingerprint != other_prompt.fingerprint("m", {"max_tokens": 8})
    assert fingerprint != base.fingerprint("m2", {"max_tokens": 8})
    assert fingerprint != base.fingerprint("m", {"max_tokens": 9})


def test_a_line_that_is_not_utf8_is_a_malformed_item(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_bytes(b'{"id": "a", "prompt": "caf\xe9"}\n{"id": "b", "prompt": "ok"}\n')
    items = parse_file(path)
    assert items[0].error.startswith("line 1: not valid UTF-8")
    assert items[1].is_valid and items[1].line == 2


def test_missing_input_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="batch input .*nope.jsonl"):
        parse_file(tmp_path / "nope.jsonl")


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("gpt-4o-mini", ("openai", "gpt-4o-mini", 0.15, 0.60)),
        ("gpt-4o-mini-2024-07-18", ("openai", "gpt-4o-mini", 0.15, 0.60)),
        ("gpt-4o-2024-08-06", ("openai", "gpt-4o", 2.50, 10.00)),
        ("claude-3-5-haiku-latest", ("anthropic", "claude-3-5-haiku-latest", 0.80, 4.00)),
        ("openai/gpt-4o-mini", ("openai", "gpt-4o-mini", 0.15, 0.60)),
        ("/models/tiny-gpt2", None),
        ("Qwen/Qwen2.5-7B-Instruct", None),
        ("", None),
    ],
)
def test_maintained_table_prices_dated_names_and_other_providers(model, expected):
    price = maintained_price(model)
    if expected is None:
        assert price is None
        return
    provider, model_id, input_per_1m, output_per_1m = expected
    assert (price.provider_id, price.model_id) == (provider, model_id)
    version = importlib.metadata.version("genai-prices")
    assert price.source == f"genai-prices {version}: {provider} {model_id}"
    assert price.cost(1_000_000, 0) == pytest.approx(input_per_1m)
    assert price.cost(0, 1_000_000) == pytest.approx(output_per_1m)


def test_tiered_prices_are_applied_request_by_request():
    """Gemini 2.5 Pro: input costs twice as much per token above 200k tokens per request."""
    price = maintained_price("gemini-2.5-pro")
    assert price is not None
    rows = [{"status": "ok", "input_tokens": 100_000, "output_tokens": 0}] * 3
    summary = summarize(
        rows,
        sent_this_run=3,
        attempts_this_run=3,
        errors_this_run={},
        latencies_this_run_s=[0.1] * 3,
        wall_s=1.0,
        price=price,
    )
    # Three requests of 100k tokens, at the lower tier; their 300k total would be upper tier.
    assert summary["estimated_cost_usd"] == pytest.approx(3 * price.cost(100_000, 0))
    assert summary["estimated_cost_usd"] == pytest.approx(price.cost(300_000, 0) / 2)


def test_own_table_first_then_the_maintained_one_then_none(tmp_path):
    path = tmp_path / "prices.json"
    path.write_text('{"models": {"local/": {"input_per_1m": 1, "output_per_1m": 2}}}')
    own = resolve_price("local/tiny-v2", table_path=path)
    assert own == ModelPrice(1.0, 2.0, source=f"price table {path}: local/")
    assert resolve_price("gpt-4o-mini", table_path=path) == maintained_price("gpt-4o-mini")
    assert resolve_price("/models/tiny-gpt2", table_path=path) is None
    assert resolve_price("gpt-4o-mini", 3.0, 4.0, path) == ModelPrice(3.0, 4.0)
    with pytest.raises(ValueError, match="set both the input and the output price"):
        resolve_price("gpt-4o-mini", input_per_1m=3.0)


def test_cost_is_per_million_tokens():
    assert ModelPrice(0.15, 0.60).cost(2_000_000, 1_000_000) == pytest.approx(0.90)


def test_bad_price_table_names_the_file_and_model(tmp_path):
    path = tmp_path / "prices.json"
    path.write_text('{"models": {"m": {"input_per_1m": 1}}}')
    with pytest.raises(ValueError, match=r"prices.json: model 'm' needs numeric"):
        load_price_table(path)


@pytest.mark.parametrize(
    ("values", "fraction", "expected"),
    [([], 0.5, None), ([3.0], 0.95, 3.0), ([1, 2, 3, 4], 0.5, 2.5), (list(range(101)), 0.95, 95)],
)
def test_percentile_interpolates(values, fraction, expected):
    assert percentile(values, fraction) == expected
