"""A content-addressed store of normalised document texts.

``raw_documents`` writes each document's text once, under its content hash;
``document_embeddings`` reads back only the texts it must chunk. Unchanged
documents are never rewritten, and no step holds the whole corpus in memory.
The texts live in an :class:`~genai_assets.io_managers.storage.ObjectStore`: a
local folder, or an S3 prefix in production, where steps run in separate pods.

Beside the texts, one small record per document (its last manifest row, with
the hash of its raw bytes) lets the next run reuse an extraction when the bytes
did not change, and keep a document whose source is unavailable. A text is
pruned only when a run replaced or dropped the record that pointed to it and no
other record still does, so a run never deletes a text that a run working on
other sources just wrote.
"""

import json
from collections.abc import Iterable
from typing import Any

from genai_assets.io_managers.storage import ObjectStore

RECORDS_PREFIX = "records/"


class SnapshotStore:
    """Texts by content hash in an object store."""

    def __init__(self, store: ObjectStore):
        self.store = store

    @staticmethod
    def _key(content_hash: str) -> str:
        return f"{content_hash[:2]}/{content_hash}.txt"

    def has(self, content_hash: str) -> bool:
        """Whether the text with this hash is stored."""
        return self.store.exists(self._key(content_hash))

    def put(self, content_hash: str, text: str) -> bool:
        """Store a text unless present; True when written. Never half-written."""
        key = self._key(content_hash)
        if self.store.exists(key):
            return False
        self.store.write_bytes(key, text.encode("utf-8"))
        return True

    def get(self, content_hash: str) -> str:
        """The stored text; FileNotFoundError names the hash if it is missing."""
        key = self._key(content_hash)
        try:
            return self.store.read_bytes(key).decode("utf-8")
        except FileNotFoundError:
            raise FileNotFoundError(
                f"no stored text for content hash {content_hash} (expected at "
                f"{self.store.uri(key)}); rematerialize raw_documents"
            ) from None

    @staticmethod
    def _record_key(doc_id: str) -> str:
        return f"{RECORDS_PREFIX}{doc_id[:2]}/{doc_id}.json"

    def records(self) -> dict[str, dict[str, Any]]:
        """Every document's last manifest row, by document id."""
        rows = {}
        for key in self.store.list_keys(RECORDS_PREFIX):
            if key.endswith(".json"):
                row = json.loads(self.store.read_bytes(key))
                rows[row["doc_id"]] = row
        return rows

    def put_record(self, row: dict[str, Any]) -> None:
        """Remember a document's manifest row (after its text is stored)."""
        self.store.write_bytes(self._record_key(row["doc_id"]), json.dumps(row).encode("utf-8"))

    def release(self, replaced: Iterable[dict[str, Any]], dropped: Iterable[str]) -> int:
        """Forget ``dropped`` documents and prune the texts nothing refers to any more.

        ``replaced`` are the previous rows of documents whose record now points to
        another text (or was dropped); only their texts are candidates, and only
        those that no record refers to when this runs. Returns the texts deleted.
        """
        self.store.delete([self._record_key(doc_id) for doc_id in dropped])
        candidates = {row["content_hash"] for row in replaced}
        if not candidates:
            return 0
        referenced = {row["content_hash"] for row in self.records().values()}
        stale = [self._key(h) for h in sorted(candidates - referenced) if self.has(h)]
        self.store.delete(stale)
        return len(stale)
