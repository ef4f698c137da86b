"""The resumable results journal and the final ordered results.

While a batch runs, each item's outcome is appended to ``progress.jsonl`` as
soon as it is known and flushed, so a crash or cancel loses at most the
requests in flight. On a rerun the journal is read back: an item whose latest
record is a success for the same request (same fingerprint: model, messages
and parameters) is not sent again. A torn last line from a crash is skipped
and counted. When every item has an outcome, :func:`assemble_rows` builds the
final table: one row per input line, in input order.
"""

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from genai_assets.batch_inference.items import BatchItem

STATUS_OK = "ok"
STATUS_FAILED = "failed"
MALFORMED_INPUT = "malformed_input"

ROW_FIELDS = (
    "line",
    "id",
    "status",
    "output",
    "finish_reason",
    "error",
    "error_type",
    "status_code",
    "input_tokens",
    "output_tokens",
    "latency_s",
    "attempts",
    "model",
)


class ResultJournal:
    """Append-only JSONL of item outcomes at ``path``, one flushed line per outcome."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.corrupt_lines = 0
        self._handle: TextIO | None = None

    def load(self) -> dict[str, dict[str, Any]]:
        """The latest record per item key; unreadable lines (a torn write) are counted, skipped."""
        latest: dict[str, dict[str, Any]] = {}
        self.corrupt_lines = 0
        if not self.path.exists():
            return latest
        with self.path.open(encoding="utf-8") as handle:
            for text in handle:
                if not text.strip():
                    continue
                try:
                    record = json.loads(text)
                except json.JSONDecodeError:
                    self.corrupt_lines += 1
                    continue
                if isinstance(record, dict) and isinstance(record.get("key"), str):
                    latest[record["key"]] = record
                else:
                    self.corrupt_lines += 1
        return latest

    def __enter__(self) -> "ResultJournal":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        needs_newline = self.path.exists() and self.path.stat().st_size > 0
        if needs_newline:
            with self.path.open("rb") as handle:
                handle.seek(-1, os.SEEK_END)
                needs_newline = handle.read(1) != b"\n"
        self._handle = self.path.open("a", encoding="utf-8")
        if needs_newline:  # a torn line from a crash must not swallow the next record
            self._handle.write("\n")
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def append(self, record: dict[str, Any]) -> None:
        """Write one outcome and flush it to the operating system."""
        if self._handle is None:
            raise RuntimeError(f"journal {self.path} is not open; use it as a context manager")
        self._handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._handle.flush()


def is_done(
    record: dict[str, Any] | None, fingerprint: str, *, retry_failed_items: bool = True
) -> bool:
    """Whether a journal record settles the item, so a rerun need not send it."""
    if record is None or record.get("fingerprint") != fingerprint:
        return False
    return record.get("status") == STATUS_OK or not retry_failed_items


def malformed_row(item: BatchItem) -> dict[str, Any]:
    """The result row of an input line that could not be sent."""
    row = dict.fromkeys(ROW_FIELDS)
    row.update(
        line=item.line,
        id=item.id,
        status=STATUS_FAILED,
        error=item.error,
        error_type=MALFORMED_INPUT,
        attempts=0,
    )
    return row


def assemble_rows(
    items: Sequence[BatchItem], records: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """One row per input item, in input order; raises if a valid item has no record."""
    rows: list[dict[str, Any]] = []
    missing: list[str] = []
    for item in items:
        if not item.is_valid:
            rows.append(malformed_row(item))
            continue
        record = records.get(item.key)
        if record is None:
            missing.append(item.key)
            continue
        rows.append({name: record.get(name) for name in ROW_FIELDS} | {"line": item.line})
    if missing:
        raise RuntimeError(
            f"{len(missing)} items have no recorded outcome (first: {missing[:5]}); "
            "the batch did not finish"
        )
    return rows


def write_rows(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """Write ``rows`` as JSONL to ``path`` atomically (a temporary file, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    with temporary.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    temporary.replace(path)
    return path
