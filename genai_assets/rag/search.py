"""The one search function: what readers get and what ``rag_quality_metrics`` measures.

``dense`` ranks chunks by the embedding model, ``sparse`` by BM25 over the chunk
texts, ``hybrid`` runs both and fuses the two rankings by reciprocal rank
(``rrf_k``; ``weights`` weigh the dense and the sparse ranking). Both engines
(Qdrant Edge and a Qdrant server) run the same query, see ``vector_store``.
"""

from collections.abc import Callable, Sequence
from typing import Any

from genai_assets.rag.vector_store import (
    DEFAULT_QUERY_MODE,
    QUERY_MODES,
    Hit,
    QueryMode,
    VectorStore,
    bm25_query,
)

# RRF's k and the weights of the dense and the sparse ranking (None: equal), as the
# retrieval benchmark chose them on its tuning half (bench/README.md).
DEFAULT_RRF_K = 60
DEFAULT_WEIGHTS: tuple[float, float] | None = None


def search(
    store: VectorStore,
    collection: str,
    queries: Sequence[str],
    encode: Callable[[list[str]], Any] | None,
    k: int = 5,
    mode: QueryMode = DEFAULT_QUERY_MODE,
    rrf_k: int = DEFAULT_RRF_K,
    weights: tuple[float, float] | None = DEFAULT_WEIGHTS,
) -> list[list[Hit]]:
    """The top ``k`` chunks of ``collection`` (a name or an alias) for every query.

    ``encode`` turns texts into the collection's dense vectors (the model that
    built it); a ``sparse`` search does not need it.

    Raises:
        ValueError: an unknown mode, a missing encoder, or a sparse or hybrid search
            of a collection built without sparse vectors.
    """
    if mode not in QUERY_MODES:
        raise ValueError(f"query mode {mode!r} is not one of {', '.join(QUERY_MODES)}")
    if mode != "sparse" and encode is None:
        raise ValueError(f"a {mode} search needs the embedding model's encode function")
    physical = store.resolve(collection)
    if mode != "dense" and store.collection_spec(physical).sparse_model is None:
        raise ValueError(
            f"collection {physical} has no BM25 sparse vectors (it was built before they "
            f"existed); search it with mode='dense', or rebuild it to use {mode!r}"
        )
    dense = encode(list(queries)) if mode != "sparse" else [None] * len(queries)
    return [
        store.query(
            physical,
            mode=mode,
            dense=vector.tolist() if hasattr(vector, "tolist") else vector,
            sparse=bm25_query(text) if mode != "dense" else None,
            limit=k,
            rrf_k=rrf_k,
            weights=weights,
        )
        for text, vector in zip(queries, dense, strict=True)
    ]
