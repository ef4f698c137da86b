"""The summary a clean sync leaves beside a local collection, so a rerun need not open it."""

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from genai_assets.rag.index import DocumentState
from genai_assets.rag.sync import IndexedState, SourceDocument


class SyncSummary:
    """What the last clean sync left in a local collection, kept beside its storage.

    Opening embedded Qdrant loads the whole collection into memory, which on a
    large corpus costs more than everything else an unchanged rerun does. After a
    clean sync the summary records every document's hash and point ids, so a rerun
    knows what the index holds without reading it back: an unchanged rerun does not
    open it at all, and a changed one only writes. It is deleted before any write,
    so a run that dies half way leaves none, and the next run reads the index itself.
    """

    FORMAT = 2

    def __init__(self, path: Path):
        self.path = path

    def invalidate(self) -> None:
        """Forget the summary: the index is about to change."""
        self.path.unlink(missing_ok=True)

    def save(
        self,
        fingerprint: str,
        documents: Sequence[SourceDocument],
        document_points: dict[str, list[str]],
    ) -> None:
        """Record a clean sync (atomic write): each document's hash and point ids."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(
            json.dumps(
                {
                    "format": self.FORMAT,
                    "settings": fingerprint,
                    "documents": {
                        doc.doc_id: [doc.content_hash, document_points[doc.doc_id]]
                        for doc in documents
                    },
                }
            )
        )
        os.replace(tmp, self.path)

    def _read(self, fingerprint: str) -> dict[str, Any] | None:
        try:
            summary = json.loads(self.path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        if summary.get("format") != self.FORMAT or summary.get("settings") != fingerprint:
            return None
        return summary["documents"]

    def indexed(self, fingerprint: str) -> IndexedState | None:
        """The index's content per document, if a clean sync with these settings recorded it."""
        documents = self._read(fingerprint)
        if documents is None:
            return None
        states = {}
        for doc_id, (doc_hash, ids) in documents.items():
            states[doc_id] = DocumentState(
                {
                    pid: {
                        "doc_hash": doc_hash,
                        "settings": fingerprint,
                        "chunk_index": index,
                        "chunk_count": len(ids),
                    }
                    for index, pid in enumerate(ids)
                }
            )
        return IndexedState(states, sum(len(ids) for _, ids in documents.values()))

    def unchanged_points(self, fingerprint: str, documents: Sequence[SourceDocument]) -> int | None:
        """The point count if the index already holds exactly ``documents``, else None."""
        recorded = self._read(fingerprint)
        if recorded is None or len(recorded) != len(documents):
            return None
        points = 0
        for doc in documents:
            entry = recorded.get(doc.doc_id)
            if entry is None or entry[0] != doc.content_hash:
                return None
            points += len(entry[1])
        return points
