"""What a sync did: exact counts, the embedding rate, and one line that says it all.

The run's log lines and its metadata both read this object, so they say the same.
"""

from dataclasses import dataclass, field


@dataclass
class SyncReport:
    """What a sync did; every count is exact."""

    documents_new: int = 0
    documents_changed: int = 0
    documents_unchanged: int = 0
    documents_deleted: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    chunks_embedded: int = 0
    chunks_reused: int = 0
    chunks_deduplicated: int = 0
    chunks_deleted: int = 0
    tokens_in_chunks: int = 0  # document tokens covered by some chunk
    tokens_in_documents: int = 0
    embed_seconds: float = 0.0
    model_loaded: bool = False
    dtype: str | None = None
    dtype_reason: str | None = None
    device: str | None = None
    # Every document's point ids after the sync, in chunk order (for the next summary).
    document_points: dict[str, list[str]] = field(default_factory=dict)

    @property
    def chunks_per_second(self) -> float | None:
        """Embedding throughput over the time spent in the model; None when nothing was embedded."""
        if not self.chunks_embedded or not self.embed_seconds:
            return None
        return self.chunks_embedded / self.embed_seconds

    @property
    def token_coverage(self) -> float | None:
        """Share of the processed documents' tokens inside some chunk; None when none was read."""
        if not self.tokens_in_documents:
            return None
        return self.tokens_in_chunks / self.tokens_in_documents

    def summary(self) -> str:
        """One line for the run's log: the same counts and rate as the run's metadata."""
        documents = (
            f"{self.documents_new} new, {self.documents_changed} changed, "
            f"{self.documents_unchanged} unchanged, {self.documents_deleted} deleted, "
            f"{len(self.skipped)} skipped documents"
        )
        rate = self.chunks_per_second
        embedded = f"{self.chunks_embedded} chunks embedded" + (
            f" at {rate:.1f} chunks/s" if rate is not None else ""
        )
        return (
            f"{documents}; {embedded}, {self.chunks_reused} reused, "
            f"{self.chunks_deduplicated} deduplicated, {self.chunks_deleted} deleted"
        )
