"""The manifest ``raw_documents`` builds from what the loader yields, and its bookkeeping.

Each loaded document's text goes to the snapshot store and its row to the
manifest; an unchanged document reuses its last row; a document that could not
be read now keeps its last row; skipped inputs and folder entries that are not
documents are listed with their reason. :meth:`ManifestBuilder.finish` then
drops the records of documents this run's sources no longer hold and prunes
the texts nothing refers to any more.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from genai_assets.rag.documents import Document, UnchangedDocument
from genai_assets.rag.snapshots import SnapshotStore
from genai_assets.rag.sources import NOT_SELECTED, UNAVAILABLE, SkippedInput, source_covers


@dataclass
class ManifestBuilder:
    """Collects one run's manifest over ``sources``; ``warn`` reports skipped inputs."""

    store: SnapshotStore
    sources: list[str]
    warn: Callable[[str], None]
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    unavailable: list[tuple[str, str]] = field(default_factory=list)
    not_ingested: list[tuple[str, str]] = field(default_factory=list)
    written: int = 0
    reused: int = 0

    def __post_init__(self) -> None:
        self.previous = self.store.records()
        self.previous_by_uri = {row["uri"]: row for row in self.previous.values()}

    def add(self, item: Document | UnchangedDocument | SkippedInput) -> None:
        """Account for one item the loader yielded."""
        if isinstance(item, SkippedInput):
            self._skip(item)
            return
        if isinstance(item, Document):
            self.written += self.store.put(item.content_hash, item.text)
            row = item.manifest_row()
        else:
            self.reused += 1
            row = item.row
        self.rows[row["doc_id"]] = row
        if self.previous.get(row["doc_id"]) != row:
            self.store.put_record(row)  # after its text: a record never points at nothing

    def _skip(self, item: SkippedInput) -> None:
        if item.kind == NOT_SELECTED:
            self.not_ingested.append((item.uri, item.reason))
            return
        if item.kind != UNAVAILABLE:
            self.warn(f"skipped {item.uri}: {item.reason}")
            self.skipped.append((item.uri, item.reason))
            return
        self.warn(f"unavailable {item.uri}: {item.reason}")
        self.unavailable.append((item.uri, item.reason))
        # Keep the last version of the document, or of every document of a source
        # that could not even be listed, so nothing is deleted.
        if item.uri in self.sources:
            kept = [row for row in self.previous.values() if source_covers(item.uri, row["uri"])]
        else:
            kept = [self.previous_by_uri[item.uri]] if item.uri in self.previous_by_uri else []
        for row in kept:
            self.rows.setdefault(row["doc_id"], row)

    def finish(self) -> int:
        """Drop records of vanished documents, prune texts no record needs; returns texts pruned.

        Only records under this run's sources are dropped, and only texts this run
        stopped referring to are candidates, so a run over other sources never
        deletes a text another run just wrote.
        """
        dropped = [
            doc_id
            for doc_id, row in self.previous.items()
            if doc_id not in self.rows
            and any(source_covers(source, row["uri"]) for source in self.sources)
        ]
        replaced = [self.previous[doc_id] for doc_id in dropped] + [
            self.previous[doc_id]
            for doc_id, row in self.rows.items()
            if doc_id in self.previous
            and self.previous[doc_id]["content_hash"] != row["content_hash"]
        ]
        return self.store.release(replaced, dropped)

    def counts(self, key: str) -> dict[str, int]:
        """How many manifest rows have each value of ``key`` (e.g. format, encoding)."""
        found: dict[str, int] = {}
        for row in self.rows.values():
            value = row.get(key) or "n/a"
            found[value] = found.get(value, 0) + 1
        return found
