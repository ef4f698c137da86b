"""Parse a JSONL file of inference requests into items, one per non-blank line.

Each line is a JSON object with an ``id`` and either a ``prompt`` (a string,
sent as one user message) or ``messages`` (OpenAI chat messages), plus
optional per-item sampling parameters (``max_tokens``, ``temperature``,
``top_p``, ``seed``, ``stop``). A line that cannot be used becomes a failed
item carrying its line number and the reason; it is never dropped.
"""

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SAMPLING_PARAMETERS = ("max_tokens", "temperature", "top_p", "seed", "stop")
KNOWN_KEYS = frozenset({"id", "prompt", "messages", *SAMPLING_PARAMETERS})
CHAT_ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})


@dataclass(frozen=True)
class BatchItem:
    """One input line: a request to send, or the reason it cannot be sent.

    Attributes:
        line: 1-based line number in the input file.
        id: The item's id as a string (``None`` when the line has no usable id).
        messages: Chat messages to send; empty when ``error`` is set.
        params: Per-item sampling parameters (``max_tokens``, ``temperature``, ...).
        error: Why the line is malformed; ``None`` for a valid request.
        ignored_keys: Keys on the line that the parser does not use.
    """

    line: int
    id: str | None
    messages: tuple[dict[str, Any], ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    ignored_keys: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """Identity of the item in the results journal: its id, else its line."""
        return self.id if self.id is not None and self.error is None else f"line:{self.line}"

    @property
    def is_valid(self) -> bool:
        """Whether the item can be sent."""
        return self.error is None

    def fingerprint(self, model: str, defaults: dict[str, Any]) -> str:
        """Hash of everything that decides the response, to detect a changed request on resume."""
        body = {"model": model, "messages": list(self.messages), **self.request_params(defaults)}
        encoded = json.dumps(body, sort_keys=True, ensure_ascii=False).encode()
        return hashlib.sha256(encoded).hexdigest()[:16]

    def request_params(self, defaults: dict[str, Any]) -> dict[str, Any]:
        """Sampling parameters to send: the run's defaults overridden by the item's own."""
        merged = {k: v for k, v in defaults.items() if v is not None}
        merged.update(self.params)
        return merged


def _malformed(line: int, item_id: str | None, reason: str) -> BatchItem:
    return BatchItem(line=line, id=item_id, error=f"line {line}: {reason}")


def _check_messages(raw: Any) -> str | None:
    if not isinstance(raw, list) or not raw:
        return "'messages' must be a non-empty list"
    for index, message in enumerate(raw):
        if not isinstance(message, dict):
            return f"messages[{index}] is not an object"
        role = message.get("role")
        if role not in CHAT_ROLES:
            return f"messages[{index}] has role {role!r}, expected one of {sorted(CHAT_ROLES)}"
        content = message.get("content")
        if not isinstance(content, str | list) or (isinstance(content, str) and not content):
            return f"messages[{index}] needs a non-empty 'content' (string or list of parts)"
    return None


def _check_params(record: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    params = {name: record[name] for name in SAMPLING_PARAMETERS if record.get(name) is not None}
    max_tokens = params.get("max_tokens")
    if max_tokens is not None and (
        isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1
    ):
        return params, f"'max_tokens' must be a positive integer, got {max_tokens!r}"
    for name, low, high in (("temperature", 0.0, 2.0), ("top_p", 0.0, 1.0)):
        value = params.get(name)
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        if value is not None and not (is_number and low <= value <= high):
            return params, f"'{name}' must be a number in [{low}, {high}], got {value!r}"
    seed = params.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        return params, f"'seed' must be an integer, got {seed!r}"
    stop = params.get("stop")
    if stop is not None and not (
        isinstance(stop, str) or (isinstance(stop, list) and all(isinstance(s, str) for s in stop))
    ):
        return params, f"'stop' must be a string or a list of strings, got {stop!r}"
    return params, None


def parse_line(text: str, line: int) -> BatchItem:
    """Parse one JSONL line (1-based ``line``) into a valid or malformed item."""
    try:
        record = json.loads(text)
    except json.JSONDecodeError as error:
        return _malformed(line, None, f"invalid JSON ({error.msg} at column {error.colno})")
    if not isinstance(record, dict):
        return _malformed(line, None, f"expected a JSON object, got {type(record).__name__}")
    raw_id = record.get("id")
    if isinstance(raw_id, bool) or not isinstance(raw_id, str | int) or raw_id == "":
        return _malformed(line, None, f"'id' must be a non-empty string or integer, got {raw_id!r}")
    item_id = str(raw_id)
    has_prompt, has_messages = "prompt" in record, "messages" in record
    if has_prompt == has_messages:
        return _malformed(line, item_id, "needs exactly one of 'prompt' or 'messages'")
    if has_prompt:
        prompt = record["prompt"]
        if not isinstance(prompt, str) or not prompt.strip():
            return _malformed(line, item_id, "'prompt' must be a non-empty string")
        messages: list[dict[str, Any]] = [{"role": "user", "content": prompt}]
    else:
        problem = _check_messages(record["messages"])
        if problem:
            return _malformed(line, item_id, problem)
        messages = record["messages"]
    params, problem = _check_params(record)
    if problem:
        return _malformed(line, item_id, problem)
    return BatchItem(
        line=line,
        id=item_id,
        messages=tuple(messages),
        params=params,
        ignored_keys=tuple(sorted(set(record) - KNOWN_KEYS)),
    )


def parse_lines(lines: Iterable[str | bytes]) -> list[BatchItem]:
    """Parse JSONL lines; blank lines are skipped, a repeated id is a malformed item.

    Lines may be ``bytes`` (as read from a file): one that is not UTF-8 is a malformed item.
    """
    items: list[BatchItem] = []
    first_seen: dict[str, int] = {}
    for number, raw in enumerate(lines, start=1):
        if isinstance(raw, bytes):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                items.append(_malformed(number, None, f"not valid UTF-8 ({error.reason})"))
                continue
        else:
            text = raw
        if not text.strip():
            continue
        item = parse_line(text, number)
        if item.is_valid and item.id is not None:
            if item.id in first_seen:
                first = first_seen[item.id]
                reason = f"duplicate id {item.id!r} (first on line {first})"
                item = _malformed(number, item.id, reason)
            else:
                first_seen[item.id] = number
        items.append(item)
    return items


def parse_file(path: Path) -> list[BatchItem]:
    """Parse the JSONL file at ``path``; raises ``FileNotFoundError`` naming the path."""
    if not path.is_file():
        raise FileNotFoundError(f"batch input {path} does not exist or is not a file")
    with path.open("rb") as handle:
        return parse_lines(handle)
