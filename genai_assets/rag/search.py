"""The one search function: what readers get and what ``rag_quality_metrics`` measures.

``dense`` ranks chunks by the embedding model, ``sparse`` by BM25 over the chunk
texts, ``hybrid`` runs both and fuses the two rankings by reciprocal rank
(``rrf_k``; ``weights`` weigh the dense and the sparse ranking). Both engines
(Qdrant Edge and a Qdrant server) run the same query, see ``vector_store``.

``per_document`` caps the chunks one document contributes to the top ``k``: the
engine is asked for ``OVERFETCH`` times more, and the best chunks of each document
are kept in rank order. A page whose several chunks all match the words of a
question otherwise fills the top ``k`` and pushes the page that answers it down.
"""

from collections.abc import Callable, Sequence
from typing import Any

from genai_assets.rag.vector_store import (
    DEFAULT_QUERY_MODE,
    DEFAULT_RRF_K,
    DEFAULT_WEIGHTS,
    QUERY_MODES,
    Hit,
    QueryMode,
    VectorStore,
    bm25_query,
)

# The chunks per document, as the retrieval benchmark chose them on its tuning half
# (bench/README.md); the query defaults are the index interface's.
DEFAULT_PER_DOCUMENT: int | None = 1
OVERFETCH = 4


def search(
    store: VectorStore,
    collection: str,
    queries: Sequence[str],
    encode: Callable[[list[str]], Any] | None,
    k: int = 5,
    mode: QueryMode = DEFAULT_QUERY_MODE,
    rrf_k: int = DEFAULT_RRF_K,
    weights: tuple[float, float] | None = DEFAULT_WEIGHTS,
    per_document: int | None = DEFAULT_PER_DOCUMENT,
) -> list[list[Hit]]:
    """The top ``k`` chunks of ``collection`` (a name or an alias) for every query.

    ``encode`` turns texts into the collection's dense vectors (the model that
    built it); a ``sparse`` search does not need it. ``per_document`` (None: no
    cap) is the most chunks of one document (payload ``doc_id``) among the ``k``.

    Raises:
        ValueError: an unknown mode, a missing encoder, or a sparse or hybrid search
            of a collection built without sparse vectors.
    """
    if mode not in QUERY_MODES:
        raise ValueError(f"query mode {mode!r} is not one of {', '.join(QUERY_MODES)}")
    if per_document is not None and per_document < 1:
        raise ValueError(f"per_document must be at least 1 (or None), not {per_document}")
    if mode != "sparse" and encode is None:
        raise ValueError(f"a {mode} search needs the embedding model's encode function")
    physical = store.resolve(collection)
    if mode != "dense" and store.collection_spec(physical).sparse_model is None:
        raise ValueError(
            f"collection {physical} has no BM25 sparse vectors (it was built before they "
            f"existed); search it with mode='dense', or rebuild it to use {mode!r}"
        )
    dense = encode(list(queries)) if mode != "sparse" else [None] * len(queries)
    fetch = k if per_document is None else k * OVERFETCH
    return [
        capped(
            store.query(
                physical,
                mode=mode,
                dense=vector.tolist() if hasattr(vector, "tolist") else vector,
                sparse=bm25_query(text) if mode != "dense" else None,
                limit=fetch,
                rrf_k=rrf_k,
                weights=weights,
            ),
            k,
            per_document,
        )
        for text, vector in zip(queries, dense, strict=True)
    ]


def capped(hits: Sequence[Hit], k: int, per_document: int | None) -> list[Hit]:
    """The first ``k`` hits in rank order, at most ``per_document`` of each ``doc_id``.

    A hit without a ``doc_id`` counts as a document of its own.
    """
    if per_document is None:
        return list(hits[:k])
    kept: list[Hit] = []
    taken: dict[str, int] = {}
    for hit in hits:
        document = str(hit.payload.get("doc_id") or hit.id)
        if taken.get(document, 0) < per_document:
            taken[document] = taken.get(document, 0) + 1
            kept.append(hit)
            if len(kept) == k:
                break
    return kept
