"""A content-addressed store of normalised document texts.

``raw_documents`` writes each document's text once, under its content hash;
``document_embeddings`` reads back only the texts it must chunk. Unchanged
documents are never rewritten, and no step holds the whole corpus in memory.
The texts live in an :class:`~genai_assets.io_managers.storage.ObjectStore`: a
local folder, or an S3 prefix in production, where steps run in separate pods.
"""

from genai_assets.io_managers.storage import ObjectStore


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

    def prune(self, keep: set[str]) -> int:
        """Delete texts whose hash is not in ``keep``; returns how many were deleted."""
        stale = [
            key
            for key in self.store.list_keys("")
            if key.endswith(".txt") and key.rsplit("/", 1)[-1][: -len(".txt")] not in keep
        ]
        self.store.delete(stale)
        return len(stale)
