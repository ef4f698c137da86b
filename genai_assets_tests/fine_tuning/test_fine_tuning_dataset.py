"""Dataset validation on hand-made good and bad lines (pure logic, no Dagster)."""

import json

import pytest
from transformers import AutoTokenizer

from genai_assets import settings
from genai_assets.fine_tuning import dataset as ds
from genai_assets.fine_tuning import sources
from genai_assets.fine_tuning.formatting import count_tokens, tokenize_conversation

GOOD_CHAT = {
    "messages": [
        {"role": "user", "content": "How do I list snapshots?"},
        {"role": "assistant", "content": "Run `skyvault snapshot list`."},
    ]
}
GOOD_INSTRUCTION = {
    "instruction": "Explain retention policies.",
    "input": "Vault: finance",
    "response": "A retention policy says how long snapshots of the vault are kept.",
}


def by_words(messages):
    """Token counter for pure tests: words in the conversation."""
    return sum(len(m["content"].split()) for m in messages)


def lines_of(*texts):
    return [sources.SourceLine("hand.jsonl", i, t) for i, t in enumerate(texts, start=1)]


def test_both_formats_normalise_to_chat_messages():
    assert ds.normalise(GOOD_CHAT) == GOOD_CHAT["messages"]
    assert ds.normalise(GOOD_INSTRUCTION) == [
        {"role": "user", "content": "Explain retention policies.\n\nVault: finance"},
        {"role": "assistant", "content": GOOD_INSTRUCTION["response"]},
    ]
    no_input = {"instruction": "Say hi.", "response": "Hi."}
    assert ds.normalise(no_input)[0] == {"role": "user", "content": "Say hi."}


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('{"messages": [', "malformed JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"prompt": "x", "completion": "y"}', "unknown format"),
        ('{"messages": []}', "bad messages"),
        (
            '{"messages": [{"content": "hi"}, {"role": "assistant", "content": "a"}]}',
            "missing role",
        ),
        ('{"messages": [{"role": "robot", "content": "hi"}]}', "unknown role"),
        (
            '{"messages": [{"role": "user", "content": "  "}, '
            '{"role": "assistant", "content": "a"}]}',
            "empty turn",
        ),
        ('{"messages": [{"role": "user", "content": "only a question"}]}', "missing role"),
        ('{"messages": [{"role": "assistant", "content": "no question"}]}', "missing role"),
        ('{"instruction": "Do it", "response": ""}', "empty turn"),
        ('{"instruction": "Do it", "input": 3, "response": "Done"}', "bad field"),
        # Wrong types are named as such, not reported as an empty turn or silently kept.
        ('{"instruction": "Do it", "input": 0, "response": "Done"}', "bad field: 'input'"),
        ('{"instruction": 5, "response": "Done"}', "bad field: 'instruction' must be a string"),
        ('{"instruction": "Do it", "response": ["a"]}', "bad field: 'response'"),
        (
            '{"messages": [{"role": "user", "content": 7}, {"role": "assistant", "content": "a"}]}',
            "bad field: message 0 (user) content must be a string, got int",
        ),
        ('{"instruction": "Do it", "response": "Done", "group": 4}', "bad field: 'group'"),
        ('{"instruction": "Do\u0000it", "response": "Done"}', "NUL character"),
        ('{"instruction": "Do it", "response": "Do\x00ne"}', "NUL character at column"),
    ],
)
def test_bad_lines_are_quarantined_with_line_number_and_reason(line, reason):
    good = json.dumps(GOOD_CHAT)
    result = ds.validate(lines_of(good, line), by_words, max_tokens=100, eval_fraction=0.5)
    assert len(result.records) == 1
    [bad] = result.quarantined
    assert (bad.source, bad.line, bad.raw) == ("hand.jsonl", 2, line)
    assert bad.reason.startswith(reason), bad.reason


def test_duplicates_and_overlong_records_are_quarantined_not_dropped():
    long_answer = dict(GOOD_INSTRUCTION, response="word " * 200)
    same_as_chat_in_other_format = {
        "instruction": "How do I list snapshots?",
        "response": "Run `skyvault snapshot list`.",
    }
    lines = lines_of(
        json.dumps(GOOD_CHAT),
        "",  # a blank line is not a record
        json.dumps(GOOD_CHAT),
        json.dumps(same_as_chat_in_other_format),
        json.dumps(long_answer),
        json.dumps(GOOD_INSTRUCTION),
    )
    result = ds.validate(lines, by_words, max_tokens=50, eval_fraction=0.5)
    assert len(result.records) == 2
    reasons = {q.line: q.reason for q in result.quarantined}
    assert reasons[3] == "exact duplicate: same content as hand.jsonl:1"
    assert reasons[4] == "exact duplicate: same content as hand.jsonl:1"
    assert reasons[5].startswith("too long: 20") and reasons[5].endswith("limit 50")
    assert result.quarantine_reasons() == {"exact duplicate": 2, "too long": 1}


def test_undecodable_bytes_quarantine_their_line_only(tmp_path):
    good = json.dumps(GOOD_CHAT).encode()
    latin1 = json.dumps(GOOD_INSTRUCTION).replace("Explain", "Expl\u00e4in").encode("latin-1")
    (tmp_path / "mixed.jsonl").write_bytes(good + b"\n" + latin1 + b"\n")
    result = ds.validate(sources.iter_local_lines(tmp_path), by_words, 100, eval_fraction=0.5)
    assert [r["line"] for r in result.records] == [1]
    [bad] = result.quarantined
    assert bad.line == 2 and bad.reason.startswith("undecodable bytes: not UTF-8 at byte")
    assert "\ufffd" not in json.dumps([r["messages"] for r in result.records])


def test_every_extension_the_sensor_watches_is_read(tmp_path, records_factory):
    import csv

    import pyarrow as pa
    import pyarrow.parquet as pq

    from genai_assets import settings

    assert {p.removeprefix("*") for p in settings.TRAINING_DATA_PATTERNS} == set(sources.SUFFIXES)
    rows = [r for r in records_factory() if "instruction" in r][:12]
    (tmp_path / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:3]))
    (tmp_path / "b.json").write_text(json.dumps(rows[3:6]))
    with (tmp_path / "c.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["instruction", "input", "response"])
        writer.writeheader()
        writer.writerows(rows[6:9])
    pq.write_table(pa.Table.from_pylist(rows[9:12]), tmp_path / "d.parquet")
    (tmp_path / "README.txt").write_text("not training data")
    result = ds.validate(sources.iter_local_lines(tmp_path), by_words, 1000, eval_fraction=0.5)
    assert result.quarantined == []
    expected = {ds.record_id(ds.normalise(r)) for r in rows}
    assert {r["id"] for r in result.records} == expected
    ds_lines = {(r["source"], r["line"]) for r in result.records}
    assert ("c.csv", 2) in ds_lines and ("b.json", 1) in ds_lines  # CSV line 1 is the header

    (tmp_path / "b.json").write_text('{"instruction": "not an array"}')
    (tmp_path / "c.csv").write_bytes(b"instruction,response\nDo it,Caf\xe9\n")
    result = ds.validate(sources.iter_local_lines(tmp_path), by_words, 1000, eval_fraction=0.5)
    reasons = {q.source: q.reason for q in result.quarantined}
    assert reasons["b.json"].startswith("bad file: a .json file must hold an array")
    assert reasons["c.csv"].startswith("undecodable bytes")


def test_records_sharing_a_question_or_answer_share_a_side(records_factory):
    # Two facts, each asked three ways and answered two ways: a record-hash split would
    # put some phrasings on each side, so the eval answers would be trained on.
    rows = []
    for fact in range(40):
        for question in range(3):
            for answer in range(2):
                rows.append(
                    {
                        "instruction": f"Question {question} about fact {fact}?",
                        "response": f"Answer {answer} to fact {fact}.",
                    }
                )
    result = ds.validate(lines_of(*map(json.dumps, rows)), by_words, 1000, eval_fraction=0.25)
    assert len(result.records) == 240 and result.eval and result.train
    assert ds.split_overlap(result.train, result.eval) == []
    assert len({r["group"] for r in result.records}) == 40
    sides = {}
    for record in result.records:
        sides.setdefault(record["group"], set()).add(record["split"])
    assert all(len(side) == 1 for side in sides.values())
    # An explicit group label joins records that share no text.
    labelled = [
        dict(rows[0], group="g"),
        {"instruction": "Other?", "response": "Other.", "group": "g"},
    ]
    joined = ds.validate(lines_of(*map(json.dumps, labelled)), by_words, 1000, eval_fraction=0.5)
    assert len({r["group"] for r in joined.records}) == 1


def test_shipped_training_data_split_has_no_eval_turn_in_training():
    for fraction in (0.1, 0.2, 0.3):
        result = ds.validate(sources.iter_local_lines(SHIPPED_TRAINING), by_words, 1000, fraction)
        assert result.eval and ds.split_overlap(result.train, result.eval) == []


def test_split_is_decided_by_the_group_hash_alone(records_factory):
    lines = [json.dumps(r) for r in records_factory()]
    first = ds.validate(lines_of(*lines), by_words, 1000, eval_fraction=0.25)
    shuffled = ds.validate(lines_of(*reversed(lines[5:])), by_words, 1000, eval_fraction=0.25)
    side = {r["id"]: r["split"] for r in first.records}
    assert all(side[r["id"]] == r["split"] for r in shuffled.records)
    assert 0.1 < len(first.eval) / len(first.records) < 0.4
    assert (
        first.content_hash()
        == ds.validate(
            lines_of(*reversed(lines)), by_words, 1000, eval_fraction=0.25
        ).content_hash()
    )
    assert first.content_hash() != shuffled.content_hash()


def test_token_stats_and_dataset_folder(tmp_path, records_factory):
    lines = [json.dumps(r) for r in records_factory()] + ["not json"]
    result = ds.validate(lines_of(*lines), by_words, 1000, eval_fraction=0.2)
    stats = ds.token_stats(result.records)
    assert stats["records"] == 80 and stats["min"] <= stats["median"] <= stats["max"]
    assert stats["total"] == sum(r["n_tokens"] for r in result.records)
    folder = ds.write_dataset(result, tmp_path / "ds", {"content_hash": result.content_hash()})
    assert len(ds.read_split(folder, "train")) == len(result.train)
    assert len(ds.read_split(folder, "eval")) == len(result.eval)
    quarantined = [json.loads(x) for x in (folder / "quarantine.jsonl").read_text().splitlines()]
    assert quarantined == [
        {"source": "hand.jsonl", "line": 81, "reason": quarantined[0]["reason"], "raw": "not json"}
    ]
    ds.write_dataset(result, folder, {})  # rewriting the same dataset replaces it whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_local_folder_and_s3_prefix_give_the_same_records(
    tmp_path, records_factory, jsonl_writer, s3_client
):
    rows = records_factory()[:10] + ["{broken"]
    jsonl_writer(tmp_path / "data" / "part-1.jsonl", rows[:6])
    jsonl_writer(tmp_path / "data" / "part-2.jsonl", rows[6:])
    local = ds.validate(sources.iter_local_lines(tmp_path / "data"), by_words, 1000, 0.3)

    s3_client.create_bucket(Bucket="training")
    for path in sorted((tmp_path / "data").iterdir()):
        s3_client.upload_file(str(path), "training", f"weekly/{path.name}")
    s3_client.put_object(Bucket="training", Key="weekly/README.txt", Body=b"not data")
    remote = ds.validate(
        sources.iter_s3_lines(s3_client, "training", "weekly/"), by_words, 1000, 0.3
    )
    assert remote.content_hash() == local.content_hash()
    [bad] = remote.quarantined
    assert (bad.source, bad.line) == ("s3://training/weekly/part-2.jsonl", 5)


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does-not-exist"):
        list(sources.iter_local_lines(tmp_path / "does-not-exist"))


def test_only_assistant_tokens_are_learned(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    messages = GOOD_CHAT["messages"]
    example = tokenize_conversation(tokenizer, messages, max_length=256)
    assert len(example.input_ids) == count_tokens(tokenizer, messages)
    pairs = zip(example.input_ids, example.labels, strict=True)
    learned = [token for token, label in pairs if label != -100]
    text = tokenizer.decode(learned)
    assert text.startswith("Run `skyvault snapshot list`.")
    assert "How do I" not in text
    cut = tokenize_conversation(tokenizer, messages, max_length=5)
    assert cut.input_ids == example.input_ids[:5]


SHIPPED_TRAINING = settings.PACKAGE_DATA / "training"
SHIPPED_BAD = settings.PACKAGE_DATA / "training_bad" / "bad.jsonl"


@pytest.mark.skipif(not SHIPPED_BAD.exists(), reason=f"{SHIPPED_BAD} not in this checkout yet")
def test_shipped_bad_lines_are_quarantined_as_documented():
    result = ds.validate(
        sources.iter_local_lines(SHIPPED_BAD.parent), by_words, max_tokens=1000, eval_fraction=0.5
    )
    assert sorted(r["line"] for r in result.records) == [1, 2, 9, 10]
    reasons = {q.line: q.reason.split(":")[0] for q in result.quarantined}
    assert reasons == {
        3: "malformed JSON",
        4: "unknown format",
        5: "unknown role",
        6: "empty turn",
        7: "exact duplicate",
        8: "too long",
    }


@pytest.mark.skipif(
    not SHIPPED_TRAINING.is_dir(), reason=f"{SHIPPED_TRAINING} not in this checkout yet"
)
def test_shipped_training_data_is_valid_in_both_formats():
    lines = list(sources.iter_local_lines(SHIPPED_TRAINING))
    result = ds.validate(lines, by_words, max_tokens=200, eval_fraction=0.2)
    assert result.quarantined == []
    assert len(result.records) >= 100 and len(result.eval) >= 10
    formats = {"messages" in json.loads(line.text) for line in lines if line.text.strip()}
    assert formats == {True, False}  # chat records and instruction records
