"""What versions an index: the ingest settings' fingerprint, and point ids derived from it.

A collection is named after the fingerprint of everything that changes a chunk's
vectors, and every point id derives from the document, that fingerprint and the
chunk's text, so a rerun or retry overwrites instead of duplicating.
"""

import hashlib
import json
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from genai_assets.rag.chunking import Chunk
from genai_assets.rag.vector_store import SPARSE_MODEL

# 2: the last chunk gets at least a quarter of the limit; chunks capped in characters.
CHUNKER_VERSION = 2
POINT_NAMESPACE = uuid.UUID("5b0c3a52-9f1e-4d0e-8a39-2f3c1d7e6b10")


@dataclass(frozen=True)
class IngestSettings:
    """Everything that changes the vectors of a chunk; its fingerprint versions the index.

    The device and dtype are the ones the model really runs at (the per-machine
    decision for ``auto``), and ``model_revision`` identifies the model's files: a
    collection built at bf16 on one machine is never extended at fp32 on another, or
    by a changed checkpoint under the same name.
    """

    model: str
    chunk_tokens: int
    overlap_tokens: int
    model_revision: str = field(kw_only=True)
    device: str = field(kw_only=True)
    dtype: str = field(kw_only=True)
    sparse_model: str | None = field(default=SPARSE_MODEL, kw_only=True)
    # The model (and BM25) read the title and heading path before each chunk's text.
    contextual: bool = field(default=False, kw_only=True)

    def fingerprint(self) -> str:
        """A short hash of the settings (and the chunker's version)."""
        fields: dict[str, Any] = {
            "model": self.model,
            "model_revision": self.model_revision,
            "device": self.device,
            "dtype": self.dtype,
            "chunk_tokens": self.chunk_tokens,
            "overlap_tokens": self.overlap_tokens,
            "chunker": CHUNKER_VERSION,
        }
        # The first sparse model is implied (the BM25 vectors the migration from local
        # mode adds); any other sparse model is named, so a change builds a new collection.
        if self.sparse_model != SPARSE_MODEL:
            fields["sparse"] = self.sparse_model
        if self.contextual:  # named only when on: plain collections keep their names
            fields["contextual"] = True
        blob = json.dumps(fields, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


def point_id(doc_id: str, settings_fingerprint: str, text: str, occurrence: int) -> str:
    """A point id derived from the document, the settings and the chunk's text.

    ``occurrence`` tells apart identical chunk texts inside one document. A rerun
    or retry derives the same id, so it overwrites instead of duplicating.
    """
    key = f"{doc_id}\x1f{settings_fingerprint}\x1f{occurrence}\x1f{text}"
    return str(uuid.uuid5(POINT_NAMESPACE, key))


def chunk_point_ids(doc_id: str, settings_fingerprint: str, chunks: Sequence[Chunk]) -> list[str]:
    """The point id of every chunk of one document."""
    seen: Counter[str] = Counter()
    ids = []
    for chunk in chunks:
        ids.append(point_id(doc_id, settings_fingerprint, chunk.text, seen[chunk.text]))
        seen[chunk.text] += 1
    return ids
