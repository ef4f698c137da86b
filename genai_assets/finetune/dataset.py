"""Loading, validating and splitting fine-tuning data (no dagster import).

Two record formats are accepted, one JSON object per line:

* chat: ``{"messages": [{"role": "user", "content": "..."}, ...]}``
* instruction: ``{"instruction": "...", "input": "...", "response": "..."}``
  (``input`` optional)

Both are normalised to chat messages. Every line either becomes a valid record
or a quarantined one with its source, line number and reason; nothing is
dropped silently. The train/eval split is decided by each record's content
hash, so the same record always lands on the same side whatever else changes.
"""

import hashlib
import json
import os
import shutil
import statistics
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROLES = ("system", "user", "assistant")
SPLIT_BUCKETS = 10_000


@dataclass(frozen=True)
class SourceLine:
    """One raw line of a JSONL source."""

    source: str
    line: int
    text: str


@dataclass(frozen=True)
class QuarantinedRecord:
    """A line that did not become a training record, and why."""

    source: str
    line: int
    reason: str
    raw: str


@dataclass
class ValidatedDataset:
    """Valid records (with their split) and quarantined lines."""

    train: list[dict] = field(default_factory=list)
    eval: list[dict] = field(default_factory=list)
    quarantined: list[QuarantinedRecord] = field(default_factory=list)

    @property
    def records(self) -> list[dict]:
        """All valid records, train first."""
        return self.train + self.eval

    def content_hash(self) -> str:
        """sha256 over the sorted record ids and their split: the dataset's identity."""
        digest = hashlib.sha256()
        for record in sorted(self.records, key=lambda r: r["id"]):
            digest.update(f"{record['id']}:{record['split']}\n".encode())
        return digest.hexdigest()

    def quarantine_reasons(self) -> dict[str, int]:
        """How many lines were quarantined per reason kind (text before the first colon)."""
        counts: dict[str, int] = {}
        for item in self.quarantined:
            kind = item.reason.split(":", 1)[0]
            counts[kind] = counts.get(kind, 0) + 1
        return dict(sorted(counts.items()))


class InvalidRecord(ValueError):
    """A record that cannot be used for training; the message is the reason."""


def iter_local_lines(folder: Path) -> Iterator[SourceLine]:
    """Lines of every ``*.jsonl`` file under ``folder`` (sorted, recursive)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"training data folder {folder} does not exist")
    for path in sorted(folder.rglob("*.jsonl")):
        with path.open(encoding="utf-8", errors="replace") as handle:
            for number, text in enumerate(handle, start=1):
                yield SourceLine(source=str(path.relative_to(folder)), line=number, text=text)


def iter_s3_lines(client: Any, bucket: str, prefix: str) -> Iterator[SourceLine]:
    """Lines of every ``*.jsonl`` object under ``s3://bucket/prefix`` (sorted by key).

    Args:
        client: a boto3 S3 client (injected, so tests can point it at a local server).
        bucket: bucket name.
        prefix: key prefix.
    """
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(item["Key"] for item in page.get("Contents", []))
    for key in sorted(k for k in keys if k.endswith(".jsonl")):
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        text = body.decode("utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(keepends=True), start=1):
            yield SourceLine(source=f"s3://{bucket}/{key}", line=number, text=line)


def normalise(obj: object) -> list[dict]:
    """Chat messages from a chat or instruction record.

    Raises:
        InvalidRecord: with the reason the record cannot be used.
    """
    if not isinstance(obj, dict):
        raise InvalidRecord(f"not a JSON object: got {type(obj).__name__}")
    if "messages" in obj:
        return _check_messages(obj["messages"])
    if "instruction" in obj or "response" in obj:
        instruction = obj.get("instruction")
        response = obj.get("response")
        extra = obj.get("input") or ""
        for name, value in (("instruction", instruction), ("response", response)):
            if not isinstance(value, str) or not value.strip():
                raise InvalidRecord(f"empty turn: '{name}' is missing or empty")
        if not isinstance(extra, str):
            raise InvalidRecord("bad field: 'input' must be a string")
        prompt = instruction.strip() + (f"\n\n{extra.strip()}" if extra.strip() else "")
        return [
            {"role": "user", "content": prompt},
            {"role": "assistant", "content": response.strip()},
        ]
    raise InvalidRecord(
        "unknown format: expected 'messages' or 'instruction'/'response' keys, got "
        + ", ".join(sorted(map(str, obj))[:5])
    )


def _check_messages(messages: object) -> list[dict]:
    if not isinstance(messages, list) or not messages:
        raise InvalidRecord("bad messages: 'messages' must be a non-empty list")
    cleaned = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise InvalidRecord(f"bad messages: message {index} is not an object")
        role = message.get("role")
        if role is None:
            raise InvalidRecord(f"missing role: message {index} has no 'role'")
        if role not in ROLES:
            raise InvalidRecord(f"unknown role: message {index} has role {role!r}")
        content = message.get("content")
        if not isinstance(content, str) or not content.strip():
            raise InvalidRecord(f"empty turn: message {index} ({role}) has no content")
        cleaned.append({"role": role, "content": content.strip()})
    if not any(m["role"] == "user" for m in cleaned):
        raise InvalidRecord("missing role: no user turn")
    if cleaned[-1]["role"] != "assistant":
        raise InvalidRecord("missing role: the last turn must be the assistant's answer")
    return cleaned


def record_id(messages: list[dict]) -> str:
    """sha256 of the normalised messages: equal content, equal id (used for dedup and split)."""
    canonical = json.dumps(messages, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def split_of(record_hash: str, eval_fraction: float) -> str:
    """``eval`` or ``train``, decided by the record's hash alone (deterministic)."""
    bucket = int(record_hash[:8], 16) % SPLIT_BUCKETS
    return "eval" if bucket < eval_fraction * SPLIT_BUCKETS else "train"


def validate(
    lines: Iterable[SourceLine],
    count_tokens: Callable[[list[dict]], int],
    max_tokens: int,
    eval_fraction: float,
) -> ValidatedDataset:
    """Validate, deduplicate and split ``lines``.

    Args:
        lines: raw JSONL lines with their source and line number.
        count_tokens: length of a conversation in the model's tokens.
        max_tokens: records longer than this are quarantined.
        eval_fraction: share of records (by hash) held out for evaluation.
    """
    if not 0.0 < eval_fraction < 1.0:
        raise ValueError(f"eval_fraction must be between 0 and 1, got {eval_fraction}")
    result = ValidatedDataset()
    seen: dict[str, str] = {}
    for item in lines:
        if not item.text.strip():
            continue  # blank lines (e.g. a trailing newline) are not records

        def quarantine(reason: str, item: SourceLine = item) -> None:
            result.quarantined.append(
                QuarantinedRecord(item.source, item.line, reason, item.text.rstrip("\n"))
            )

        try:
            obj = json.loads(item.text)
        except json.JSONDecodeError as error:
            quarantine(f"malformed JSON: {error.msg} at column {error.colno}")
            continue
        try:
            messages = normalise(obj)
        except InvalidRecord as error:
            quarantine(str(error))
            continue
        rid = record_id(messages)
        if rid in seen:
            quarantine(f"exact duplicate: same content as {seen[rid]}")
            continue
        seen[rid] = f"{item.source}:{item.line}"
        n_tokens = count_tokens(messages)
        if n_tokens > max_tokens:
            quarantine(f"too long: {n_tokens} tokens > limit {max_tokens}")
            continue
        split = split_of(rid, eval_fraction)
        record = {
            "id": rid,
            "messages": messages,
            "source": item.source,
            "line": item.line,
            "n_tokens": n_tokens,
            "split": split,
        }
        (result.eval if split == "eval" else result.train).append(record)
    return result


def token_stats(records: list[dict]) -> dict[str, float]:
    """Count, total, min, mean, median, p95 and max of ``n_tokens``."""
    counts = sorted(record["n_tokens"] for record in records)
    if not counts:
        return {"records": 0, "total": 0}
    return {
        "records": len(counts),
        "total": sum(counts),
        "min": counts[0],
        "mean": round(statistics.fmean(counts), 2),
        "median": statistics.median(counts),
        "p95": counts[min(len(counts) - 1, int(0.95 * len(counts)))],
        "max": counts[-1],
    }


def write_dataset(dataset: ValidatedDataset, target: Path, summary: dict) -> Path:
    """Write ``train.jsonl``, ``eval.jsonl``, ``quarantine.jsonl`` and ``dataset.json``.

    The files are written to a temporary sibling folder that is renamed into
    place, so a reader never sees a half-written dataset. An existing folder with
    the same name (the same content hash) is replaced.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".tmp-{target.name}-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        for name, rows in (
            ("train.jsonl", dataset.train),
            ("eval.jsonl", dataset.eval),
            ("quarantine.jsonl", [asdict(item) for item in dataset.quarantined]),
        ):
            with (staging / name).open("w", encoding="utf-8") as handle:
                for row in rows:
                    handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        (staging / "dataset.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
        if target.exists():
            old = target.parent / f".old-{target.name}-{uuid.uuid4().hex[:8]}"
            os.replace(target, old)
            os.replace(staging, target)
            shutil.rmtree(old)
        else:
            os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return target


def read_split(folder: Path, split: str) -> list[dict]:
    """Records of ``train`` or ``eval`` from a folder written by :func:`write_dataset`."""
    path = Path(folder) / f"{split}.jsonl"
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
