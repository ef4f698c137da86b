"""Shared fixtures: hand-made Skyline Vault training lines and the tiny base model."""

import json
import random
from pathlib import Path

import dagster as dg
import pytest

from genai_assets.defs.fine_tuning import checks, evaluation, inputs, serving, training
from genai_assets.fine_tuning.eval_set import write_eval_set
from genai_assets.fine_tuning.tiny_model import ensure_tiny_model

# Every fine-tuning asset and check, as the graph tests materialize them.
FINE_TUNING_DEFS = [
    *dg.load_assets_from_modules([inputs, training, evaluation, serving]),
    *dg.load_asset_checks_from_modules([checks]),
]

TOPICS = [
    ("snapshot", "snapshots", "skyvault snapshot create --vault NAME"),
    ("retention", "retention policies", "skyvault retention set --keep-daily 7"),
    ("restore", "restore points", "skyvault restore --point ID --target DIR"),
    ("dedup", "deduplication", "skyvault dedup status"),
    ("keystone", "the Keystone key manager", "skyvault keystone rotate"),
    ("agent", "agents", "skyvault agent register --host HOST"),
    ("replica", "replication to the secondary site", "skyvault replica sync"),
    ("quota", "quotas", "skyvault quota set --vault NAME --size 500G"),
]
QUESTIONS = [
    "How do I manage {topic} in Skyline Vault?",
    "Which command handles {topic}?",
    "What is the CLI for {topic} on port 8443?",
    "Show me how to work with {topic}.",
    "Where do I configure {topic}?",
]


def good_records(per_question: int = 2) -> list[dict]:
    """Varied, valid chat and instruction records about the sample product."""
    records: list[dict] = []
    for key, topic, command in TOPICS:
        for q_index, question in enumerate(QUESTIONS):
            for variant in range(per_question):
                prompt = question.format(topic=topic) + (f" (site {variant})" if variant else "")
                answer = (
                    f"Run `{command}` on the appliance; settings for {key} live in "
                    f"/etc/skyvault/vault.toml."
                )
                if (q_index + variant) % 2:
                    records.append({"instruction": prompt, "input": "", "response": answer})
                else:
                    records.append(
                        {
                            "messages": [
                                {"role": "system", "content": "You are the Skyline Vault helper."},
                                {"role": "user", "content": prompt},
                                {"role": "assistant", "content": answer},
                            ]
                        }
                    )
    return records


EVAL_QUESTIONS = ["Tell me the command for {topic}.", "How are {topic} handled by skyvault?"]


def eval_records() -> list[dict]:
    """The fixed evaluation set of the tests: the same topics, worded as training never is."""
    return [
        {
            "messages": [
                {"role": "system", "content": "You are the Skyline Vault helper."},
                {"role": "user", "content": question.format(topic=topic)},
                {
                    "role": "assistant",
                    "content": f"Use `{command}`; the {key} settings are in "
                    f"/etc/skyvault/vault.toml{' on every node' if n else ''}.",
                },
            ]
        }
        for key, topic, command in TOPICS
        for n, question in enumerate(EVAL_QUESTIONS)
    ]


def garbage_records(count: int = 80, seed: int = 7) -> list[dict]:
    """Well-formed records whose questions and answers are random words: valid, but garbage."""
    rng = random.Random(seed)
    words = sorted({w for r in good_records() for m in _turns(r) for w in m.split()})
    words += [f"zq{n}x" for n in range(150)]

    def noise(n: int) -> str:
        return " ".join(rng.choice(words) for _ in range(n))

    return [{"instruction": noise(8), "input": "", "response": noise(14)} for _ in range(count)]


def _turns(record: dict) -> list[str]:
    if "messages" in record:
        return [m["content"] for m in record["messages"]]
    return [record["instruction"], record["response"]]


def write_jsonl(path: Path, rows: list[dict | str]) -> Path:
    """Write rows (dicts as JSON, strings verbatim) one per line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write((row if isinstance(row, str) else json.dumps(row)) + "\n")
    return path


@pytest.fixture(scope="session")
def training_data_dir(tmp_path_factory) -> Path:
    """A folder with 80 valid records split over a chat and an instruction file."""
    folder = tmp_path_factory.mktemp("training_data")
    records = good_records()
    write_jsonl(folder / "chat.jsonl", [r for r in records if "messages" in r])
    write_jsonl(folder / "instructions.jsonl", [r for r in records if "messages" not in r])
    return folder


@pytest.fixture(scope="session")
def fixed_eval_set(tmp_path_factory) -> Path:
    """A versioned evaluation set that shares no question or answer with the training data."""
    path = tmp_path_factory.mktemp("eval_sets") / "skyline_test_v1.jsonl"
    write_eval_set(path, eval_records(), name="skyline-test", version=1)
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, training_data_dir) -> Path:
    """The tiny base model built from the hand-made data (built once per session)."""
    return ensure_tiny_model([training_data_dir], tmp_path_factory.mktemp("base_models"))


@pytest.fixture(scope="session")
def records_factory():
    """The generator of valid records, for tests that write their own files."""
    return good_records


@pytest.fixture(scope="session")
def jsonl_writer():
    """The JSONL writer helper."""
    return write_jsonl


@pytest.fixture(scope="session")
def garbage_factory():
    """The generator of valid records of random words."""
    return garbage_records
