"""Shared fixtures: hand-made Skyline Vault training lines and the tiny base model."""

import json
from pathlib import Path

import pytest

from genai_assets.finetune.tiny_model import ensure_tiny_model

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
