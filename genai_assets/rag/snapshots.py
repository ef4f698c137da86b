"""A content-addressed store of normalised document texts.

``raw_documents`` writes each document's text once, under its content hash;
``document_embeddings`` reads back only the texts it must chunk. Unchanged
documents are never rewritten, and no step holds the whole corpus in memory.
"""

import os
import tempfile
from pathlib import Path


class SnapshotStore:
    """Texts by content hash in a local folder."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def _path(self, content_hash: str) -> Path:
        return self.root / content_hash[:2] / f"{content_hash}.txt"

    def has(self, content_hash: str) -> bool:
        """Whether the text with this hash is stored."""
        return self._path(content_hash).is_file()

    def put(self, content_hash: str, text: str) -> bool:
        """Store a text unless present; True when written. Atomic: no half-written text."""
        path = self._path(content_hash)
        if path.is_file():
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
        return True

    def get(self, content_hash: str) -> str:
        """The stored text; FileNotFoundError names the hash if it is missing."""
        path = self._path(content_hash)
        try:
            return path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise FileNotFoundError(
                f"no stored text for content hash {content_hash} (expected at {path}); "
                "rematerialize raw_documents"
            ) from None

    def prune(self, keep: set[str]) -> int:
        """Delete texts whose hash is not in ``keep``; returns how many were deleted."""
        removed = 0
        if not self.root.is_dir():
            return 0
        for path in self.root.glob("*/*.txt"):
            if path.stem not in keep:
                path.unlink()
                removed += 1
        return removed
