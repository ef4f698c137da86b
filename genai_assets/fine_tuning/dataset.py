"""Validating, deduplicating and splitting fine-tuning records (no dagster import).

Two record formats are accepted, one JSON object per line:

* chat: ``{"messages": [{"role": "user", "content": "..."}, ...]}``
* instruction: ``{"instruction": "...", "input": "...", "response": "..."}``
  (``input`` optional)

Both are normalised to chat messages. Every line either becomes a valid record
or a quarantined one with its source, line number and reason; nothing is
dropped silently: undecodable bytes, NUL characters and fields of the wrong
type are quarantined with that reason. The train/eval split is by group: records
that share a question or an answer (or a ``group`` label) form one group, and
the group's hash decides its side, so no eval question or answer is ever seen
in training, and the same group always lands on the same side.
"""

import hashlib
import json
import os
import shutil
import statistics
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from genai_assets.fine_tuning.sources import SourceLine

ROLES = ("system", "user", "assistant")
SPLIT_BUCKETS = 10_000


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


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__


def normalise(obj: object) -> list[dict]:
    """Chat messages from a chat or instruction record.

    Raises:
        InvalidRecord: with the reason the record cannot be used.
    """
    if not isinstance(obj, dict):
        raise InvalidRecord(f"not a JSON object: got {_type_name(obj)}")
    if "messages" in obj:
        return _check_messages(obj["messages"])
    if "instruction" in obj or "response" in obj:
        fields = {name: obj.get(name) for name in ("instruction", "response")}
        extra = obj.get("input", "")
        for name, value in (*fields.items(), ("input", extra)):
            # A number or a list is a broken export, not an empty turn: say what it was.
            if value is not None and not isinstance(value, str):
                raise InvalidRecord(
                    f"bad field: {name!r} must be a string, got {_type_name(value)}"
                )
        for name, value in fields.items():
            if not value or not value.strip():
                raise InvalidRecord(f"empty turn: {name!r} is missing or empty")
        extra = (extra or "").strip()
        prompt = fields["instruction"].strip() + (f"\n\n{extra}" if extra else "")
        return [
            {"role": "user", "content": prompt},
            {"role": "assistant", "content": fields["response"].strip()},
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
        if content is not None and not isinstance(content, str):
            raise InvalidRecord(
                f"bad field: message {index} ({role}) content must be a string, got "
                f"{_type_name(content)}"
            )
        if not content or not content.strip():
            raise InvalidRecord(f"empty turn: message {index} ({role}) has no content")
        cleaned.append({"role": role, "content": content.strip()})
    if not any(m["role"] == "user" for m in cleaned):
        raise InvalidRecord("missing role: no user turn")
    if cleaned[-1]["role"] != "assistant":
        raise InvalidRecord("missing role: the last turn must be the assistant's answer")
    return cleaned


def record_id(messages: list[dict]) -> str:
    """sha256 of the normalised messages: equal content, equal id (used for dedup)."""
    canonical = json.dumps(messages, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def turn_keys(messages: list[dict]) -> set[str]:
    """The record's questions and answers, normalised (case and spacing do not count).

    Two records that share one of these must be on the same side of the split:
    otherwise the eval split asks a question, or expects an answer, that training
    showed word for word, and the evaluation measures memorisation.
    System prompts are shared by design and are not keys.
    """
    return {
        f"{message['role']}:{' '.join(message['content'].casefold().split())}"
        for message in messages
        if message["role"] in ("user", "assistant")
    }


def split_of(group_hash: str, eval_fraction: float) -> str:
    """``eval`` or ``train``, decided by the hash of the record's group alone (deterministic)."""
    bucket = int(group_hash[:8], 16) % SPLIT_BUCKETS
    return "eval" if bucket < eval_fraction * SPLIT_BUCKETS else "train"


def group_records(records: list[dict]) -> dict[str, str]:
    """A group id per record id: records linked by a shared question, answer or ``group``.

    Connected components over :func:`turn_keys` plus the record's own ``group``
    label (a fact id, say), so every phrasing of a fact, and every record that
    repeats one of its questions or answers, lands in one group. A group's id is
    the sha256 of its smallest key: stable while the group keeps that key.
    """
    parent: dict[str, str] = {}

    def find(key: str) -> str:
        parent.setdefault(key, key)
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    keys_of: dict[str, list[str]] = {}
    for record in records:
        keys = sorted(turn_keys(record["messages"]))
        if record.get("group"):
            keys.append(f"group:{record['group']}")
        keys_of[record["id"]] = keys
        for key in keys[1:]:
            first, other = find(keys[0]), find(key)
            if first != other:
                parent[max(first, other)] = min(first, other)  # the root is the smallest key
    return {
        rid: hashlib.sha256(find(keys[0]).encode("utf-8")).hexdigest()
        for rid, keys in keys_of.items()
    }


def validate(
    lines: Iterable[SourceLine],
    count_tokens: Callable[[list[dict]], int],
    max_tokens: int,
    eval_fraction: float,
) -> ValidatedDataset:
    """Validate, deduplicate and split ``lines``.

    Args:
        lines: raw records with their source and line number.
        count_tokens: length of a conversation in the model's tokens.
        max_tokens: records longer than this are quarantined.
        eval_fraction: share of groups (by hash, see :func:`group_records`) held out for
            evaluation.
    """
    if not 0.0 < eval_fraction < 1.0:
        raise ValueError(f"eval_fraction must be between 0 and 1, got {eval_fraction}")
    result = ValidatedDataset()
    valid: list[dict] = []
    seen: dict[str, str] = {}
    for item in lines:
        if item.error is None and not item.text.strip():
            continue  # blank lines (e.g. a trailing newline) are not records

        def quarantine(reason: str, item: SourceLine = item) -> None:
            result.quarantined.append(
                QuarantinedRecord(item.source, item.line, reason, item.text.rstrip("\n"))
            )

        if item.error is not None:
            quarantine(item.error)
            continue
        if "\x00" in item.text:
            quarantine(f"NUL character at column {item.text.index(chr(0)) + 1}")
            continue
        try:
            obj = json.loads(item.text)
        except json.JSONDecodeError as error:
            quarantine(f"malformed JSON: {error.msg} at column {error.colno}")
            continue
        try:
            messages = normalise(obj)
            group = obj.get("group")
            if group is not None and not isinstance(group, str):
                raise InvalidRecord(f"bad field: 'group' must be a string, got {_type_name(group)}")
        except InvalidRecord as error:
            quarantine(str(error))
            continue
        if any("\x00" in message["content"] for message in messages):
            # An escaped \u0000 decodes to NUL: binary junk, never text worth learning.
            quarantine("NUL character: a message contains \\u0000")
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
        record = {
            "id": rid,
            "messages": messages,
            "source": item.source,
            "line": item.line,
            "n_tokens": n_tokens,
        }
        if group:
            record["group"] = group
        valid.append(record)
    groups = group_records(valid)
    for record in valid:
        record["group"] = groups[record["id"]][:16]
        record["split"] = split_of(groups[record["id"]], eval_fraction)
        (result.eval if record["split"] == "eval" else result.train).append(record)
    return result


def split_overlap(train: list[dict], held_out: list[dict]) -> list[str]:
    """Questions and answers of ``held_out`` that ``train`` also contains (normalised)."""
    seen = set().union(*(turn_keys(record["messages"]) for record in train))
    found = set().union(*(turn_keys(record["messages"]) for record in held_out)) & seen
    return sorted(found)


def exclude_overlap(dataset: ValidatedDataset, reserved: set[str], label: str) -> int:
    """Quarantine the records that repeat a question or answer in ``reserved``.

    ``reserved`` holds the :func:`turn_keys` of the fixed evaluation set: a
    training record that repeats one of them would let the gate reward
    memorisation. Returns how many records were moved to the quarantine.
    """
    moved = 0
    for split in (dataset.train, dataset.eval):
        kept = []
        for record in split:
            shared = turn_keys(record["messages"]) & reserved
            if shared:
                role, _, text = min(shared).partition(":")
                dataset.quarantined.append(
                    QuarantinedRecord(
                        record["source"],
                        record["line"],
                        f"eval set overlap: repeats a {'question' if role == 'user' else 'answer'}"
                        f" of the fixed evaluation set {label} ({text[:60]!r})",
                        json.dumps({"messages": record["messages"]}, ensure_ascii=False),
                    )
                )
                moved += 1
            else:
                kept.append(record)
        split[:] = kept
    return moved


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
