"""The vector index on a Qdrant server, through qdrant-client (the production adapter).

Collections and aliases are the server's own. The blue/green record of an alias
is kept in the metadata of the collection the alias points at, under
``genai_assets_alias``: a swap first writes the new record onto the target
collection, then moves the alias in one ``update_collection_aliases`` call (the
server applies delete + create atomically). The alias move is the commit point:
a process killed before it leaves the alias and the old collection's record as
they were (the record written on the target is ignored while the target is not
live), after it the new record is live with the alias.

qdrant-client's local mode (``QdrantClient(path=...)`` or ``":memory:"``) runs the
same API in-process; the tests use it as the stand-in for a server.
"""

import warnings
from collections.abc import Iterator, Sequence
from typing import Any

from qdrant_client import QdrantClient, models

from genai_assets.rag.vector_store import (
    DEFAULT_RRF_K,
    DENSE,
    SPARSE,
    AliasState,
    CollectionSpec,
    DimensionMismatchError,
    Hit,
    IndexPoint,
    QueryMode,
    Record,
    SparseVector,
    VectorStore,
    check_expected_live,
    check_query,
    prefetch_limit,
)

ALIAS_METADATA = "genai_assets_alias"
SPEC_METADATA = "genai_assets_spec"


def _sparse(vector: SparseVector) -> models.SparseVector:
    return models.SparseVector(indices=vector.indices, values=vector.values)


class ServerStore(VectorStore):
    """Collections and aliases of a Qdrant server (or of qdrant-client's local mode).

    Args:
        client: an open client; closed by :meth:`close`.
        where: how to describe it (the URL, a folder or ``:memory:``).
    """

    def __init__(self, client: QdrantClient, where: str):
        self.client = client
        self.where = where

    def describe(self) -> str:
        """The URL or folder."""
        return self.where

    def list_collections(self) -> list[str]:
        """Every collection's name."""
        return sorted(c.name for c in self.client.get_collections().collections)

    def collection_exists(self, name: str) -> bool:
        """Whether a collection (not an alias) of this name exists."""
        return name in self.list_collections()

    def create_collection(self, name: str, spec: CollectionSpec) -> None:
        """Named dense vector, BM25 sparse vector with the IDF modifier, keyword indexes."""
        if spec.distance != "cosine":
            raise ValueError(f"distance {spec.distance!r} is not supported (only cosine)")
        self.client.create_collection(
            name,
            vectors_config={
                DENSE: models.VectorParams(size=spec.dimension, distance=models.Distance.COSINE)
            },
            sparse_vectors_config=(
                {SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)}
                if spec.sparse_model
                else None
            ),
            metadata={SPEC_METADATA: spec.to_json()},
        )
        with warnings.catch_warnings():
            # Keyword indexes speed up filters on a server; local mode warns that it
            # ignores them, which is expected there.
            warnings.filterwarnings("ignore", message="Payload indexes have no effect")
            for key in spec.keyword_indexes:
                self.client.create_payload_index(name, key, models.PayloadSchemaType.KEYWORD)

    def _metadata(self, name: str) -> dict[str, Any]:
        return dict(self.client.get_collection(name).config.metadata or {})

    def collection_spec(self, name: str) -> CollectionSpec:
        """The spec recorded at creation, else what the server reports (older collections)."""
        recorded = self._metadata(name).get(SPEC_METADATA)
        if recorded:
            return CollectionSpec.from_json(recorded)
        params = self.client.get_collection(name).config.params
        vectors = params.vectors
        dense = vectors.get(DENSE) if isinstance(vectors, dict) else vectors
        size = dense.size if isinstance(dense, models.VectorParams) else 0
        return CollectionSpec(dimension=size, sparse_model=None)

    def check_spec(self, name: str, spec: CollectionSpec) -> None:
        """Like the base check; a collection of the previous version is named as such."""
        if not self._metadata(name).get(SPEC_METADATA):
            raise DimensionMismatchError(
                f"Qdrant collection {name!r} on {self.where} was written by the previous "
                "version of this project (one unnamed dense vector, no BM25 vector); delete it "
                "and materialize document_embeddings to rebuild it with both vectors"
            )
        super().check_spec(name, spec)

    def delete_collection(self, name: str) -> None:
        """Delete it on the server."""
        self.client.delete_collection(name)

    def upsert(self, name: str, points: Sequence[IndexPoint]) -> None:
        """Write points, waiting until the server applied them."""
        if not points:
            return
        self.client.upsert(
            name,
            points=[
                models.PointStruct(
                    id=p.id,
                    vector=(
                        {DENSE: p.dense, SPARSE: _sparse(p.sparse)}
                        if p.sparse
                        else {DENSE: p.dense}
                    ),
                    payload=p.payload,
                )
                for p in points
            ],
            wait=True,
        )

    def set_payload(self, name: str, ids: Sequence[str], payload: dict[str, Any]) -> None:
        """Set payload keys on points."""
        if ids:
            self.client.set_payload(name, payload=payload, points=list(ids), wait=True)

    def delete(self, name: str, ids: Sequence[str]) -> None:
        """Delete points by id."""
        if ids:
            self.client.delete(
                name, points_selector=models.PointIdsList(points=list(ids)), wait=True
            )

    def delete_where(self, name: str, key: str, values: Sequence[str]) -> None:
        """Delete points by a payload value."""
        if values:
            self.client.delete(
                name,
                points_selector=models.FilterSelector(filter=_match_any(key, values)),
                wait=True,
            )

    def scroll(
        self,
        name: str,
        where: tuple[str, Sequence[str]] | None = None,
        fields: Sequence[str] | bool = True,
        with_vectors: bool = False,
        page: int = 2048,
    ) -> Iterator[Record]:
        """Points page by page."""
        only = _match_any(*where) if where is not None else None
        with_payload = list(fields) if not isinstance(fields, bool) else fields
        offset = None
        while True:
            points, offset = self.client.scroll(
                name,
                scroll_filter=only,
                limit=page,
                offset=offset,
                with_payload=with_payload,
                with_vectors=with_vectors,
            )
            for point in points:
                dense = sparse = None
                if with_vectors and isinstance(point.vector, dict):
                    dense = point.vector.get(DENSE)
                    found = point.vector.get(SPARSE)
                    if found is not None:
                        sparse = SparseVector(list(found.indices), list(found.values))
                yield Record(str(point.id), dict(point.payload or {}), dense, sparse)
            if offset is None:
                return

    def count(self, name: str) -> int:
        """Exact count."""
        return self.client.count(name, exact=True).count

    def _existing_page(self, name: str, ids: list[str]) -> list[str]:
        points = self.client.retrieve(name, ids=ids, with_payload=False, with_vectors=False)
        return [str(point.id) for point in points]

    def query(
        self,
        name: str,
        *,
        mode: QueryMode = "dense",
        dense: Sequence[float] | None = None,
        sparse: SparseVector | None = None,
        limit: int = 5,
        rrf_k: int = DEFAULT_RRF_K,
        weights: tuple[float, float] | None = None,
    ) -> list[Hit]:
        """Dense, sparse or hybrid (RRF) query, on a collection or an alias."""
        check_query(mode, dense, sparse, limit, rrf_k)
        if mode == "dense":
            response = self.client.query_points(
                name, query=list(dense), using=DENSE, limit=limit, with_payload=True
            )
        elif mode == "sparse":
            response = self.client.query_points(
                name, query=_sparse(sparse), using=SPARSE, limit=limit, with_payload=True
            )
        else:
            depth = prefetch_limit(limit)
            response = self.client.query_points(
                name,
                prefetch=[
                    models.Prefetch(query=list(dense), using=DENSE, limit=depth),
                    models.Prefetch(query=_sparse(sparse), using=SPARSE, limit=depth),
                ],
                query=models.RrfQuery(
                    rrf=models.Rrf(k=rrf_k, weights=list(weights) if weights else None)
                ),
                limit=limit,
                with_payload=True,
            )
        return [Hit(str(p.id), float(p.score), dict(p.payload or {})) for p in response.points]

    def read_alias(self, alias: str) -> AliasState | None:
        """The server's alias, and the record on the collection it points at."""
        for found in self.client.get_aliases().aliases:
            if found.alias_name == alias:
                records = self._metadata(found.collection_name).get(ALIAS_METADATA) or {}
                return AliasState(alias, found.collection_name, dict(records.get(alias) or {}))
        return None

    def swap_alias(
        self, alias: str, target: str, expected: str | None, record: dict[str, Any]
    ) -> None:
        """Write the record on the target, then move the alias in one server call.

        The compare is a read just before the move: a server has no conditional
        alias update, so two swaps racing within milliseconds can both pass it.
        The blue/green code runs one promotion at a time per alias (Dagster runs
        rag_serving_index once at a time), which leaves the rollback command as the
        only other writer.
        """
        check_expected_live(alias, self.read_alias(alias), expected)
        if target in {a.alias_name for a in self.client.get_aliases().aliases}:
            raise ValueError(f"{target!r} is an alias, not a collection")
        records = dict(self._metadata(target).get(ALIAS_METADATA) or {})
        records[alias] = record
        self.client.update_collection(target, metadata={ALIAS_METADATA: records})
        operations: list[Any] = []
        if expected is not None:  # the alias exists (the compare above checked it)
            operations.append(
                models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias))
            )
        operations.append(
            models.CreateAliasOperation(
                create_alias=models.CreateAlias(collection_name=target, alias_name=alias)
            )
        )
        self.client.update_collection_aliases(change_aliases_operations=operations)

    def close(self) -> None:
        """Close the client."""
        self.client.close()


def _match_any(key: str, values: Sequence[str]) -> models.Filter:
    return models.Filter(
        must=[models.FieldCondition(key=key, match=models.MatchAny(any=list(values)))]
    )
