"""The one interface the project uses to talk to a vector index, whatever engine runs it.

Two adapters implement it: :class:`genai_assets.rag.edge_store.EdgeStore`
(Qdrant Edge, Qdrant's engine embedded in the process; the local default) and
:class:`genai_assets.rag.server_store.ServerStore` (qdrant-client against a
Qdrant server, the production engine). Everything above this module
(ingestion, evaluation, blue/green promotion, the rollback command) is written
against :class:`VectorStore` only, so both engines run the same code.

A collection holds two vectors per point: the dense embedding (``dense``) and a
BM25 sparse vector of the chunk's text (``bm25``), computed here with Qdrant's
own BM25 model so the embedded engine and a server see the same tokens (the
server weighs them with its IDF modifier, the embedded engine the same way).
A query is ``dense``, ``sparse`` or ``hybrid`` (both, fused by reciprocal rank).

An alias names the collection readers use. Its state carries the blue/green
record (which collections were live, when, and why) and is replaced in one
atomic step together with the alias, so the two can never disagree.
"""

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal

DENSE = "dense"
SPARSE = "bm25"
# The payload keys filtered on (delete and scroll by document). Every index costs its
# load at each open and its share of the HNSW build, so only these are indexed.
KEYWORD_INDEXES = ("doc_id",)
QueryMode = Literal["dense", "sparse", "hybrid"]
QUERY_MODES: tuple[str, ...] = ("dense", "sparse", "hybrid")
# The retrieval benchmark's best (bench/README.md, chosen on its tuning half): dense +
# BM25 fused by RRF with k 20 and equal weights (None) of the two rankings.
DEFAULT_QUERY_MODE: QueryMode = "hybrid"
DEFAULT_RRF_K = 20
DEFAULT_WEIGHTS: tuple[float, float] | None = None
# Recorded in every collection's spec and in the settings fingerprint: a change of
# the sparse model (tokeniser, parameters) builds a new collection.
SPARSE_MODEL = "qdrant-bm25-en-v1"
# Ids per request when points are looked up by id.
ID_PAGE = 2048


class VectorStoreError(RuntimeError):
    """Base of the index's own errors."""


class DimensionMismatchError(ValueError):
    """An existing collection has other vector settings than the ones asked for."""


class IndexLockedError(VectorStoreError):
    """Another process holds the embedded index's folder."""


class DamagedIndexError(VectorStoreError):
    """The index files are missing, unreadable or inconsistent; the message says how to recover."""


class LegacyStorageError(VectorStoreError):
    """The storage folder was written by the previous embedded engine and must be migrated."""


class AliasConflictError(VectorStoreError):
    """An alias swap found another collection live than the one it expected."""


def check_expected_live(alias: str, current: "AliasState | None", expected: str | None) -> None:
    """The compare step of a swap: refuse unless ``alias`` points at ``expected``.

    Raises:
        AliasConflictError: another promotion or rollback moved the alias first.
    """
    live = current.collection if current else None
    if live != expected:
        raise AliasConflictError(
            f"alias {alias!r} points at {live} but this swap expected {expected}: another "
            "promotion or rollback changed it first; nothing was changed"
        )


@dataclass(frozen=True)
class CollectionSpec:
    """What a collection stores: dense size and distance, the sparse model, payload indexes."""

    dimension: int
    distance: str = "cosine"
    sparse_model: str | None = SPARSE_MODEL
    keyword_indexes: tuple[str, ...] = KEYWORD_INDEXES

    def to_json(self) -> dict[str, Any]:
        """A JSON-compatible dict."""
        return {
            "dimension": self.dimension,
            "distance": self.distance,
            "sparse_model": self.sparse_model,
            "keyword_indexes": list(self.keyword_indexes),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "CollectionSpec":
        """The spec written by :meth:`to_json`."""
        return cls(
            dimension=int(data["dimension"]),
            distance=str(data.get("distance", "cosine")),
            sparse_model=data.get("sparse_model"),
            keyword_indexes=tuple(data.get("keyword_indexes", KEYWORD_INDEXES)),
        )

    def vectors_differ(self, other: "CollectionSpec") -> str | None:
        """Why ``other``'s vectors cannot go into a collection of this spec, or None."""
        if other.dimension != self.dimension:
            return f"it holds {self.dimension}-dimensional vectors but {other.dimension} were asked"
        if other.distance != self.distance:
            return f"its distance is {self.distance}, not {other.distance}"
        if other.sparse_model != self.sparse_model:
            return f"its sparse model is {self.sparse_model}, not {other.sparse_model}"
        return None


@dataclass(frozen=True)
class SparseVector:
    """Token ids and weights of a sparse vector."""

    indices: list[int]
    values: list[float]


@dataclass
class IndexPoint:
    """A point to write: id, dense vector, optional sparse vector, payload."""

    id: str
    dense: list[float]
    payload: dict[str, Any]
    sparse: SparseVector | None = None


@dataclass
class Record:
    """A stored point, as read back."""

    id: str
    payload: dict[str, Any]
    dense: list[float] | None = None
    sparse: SparseVector | None = None


@dataclass
class Hit:
    """A query result."""

    id: str
    score: float
    payload: dict[str, Any]


@dataclass
class AliasState:
    """Where an alias points, and the blue/green record that was written with it."""

    alias: str
    collection: str
    record: dict[str, Any] = field(default_factory=dict)


@cache
def _bm25() -> Any:
    from qdrant_edge import Bm25

    return Bm25()


def bm25_document(text: str) -> SparseVector:
    """The BM25 sparse vector of a chunk's text (term frequencies, length-normalised)."""
    vector = _bm25().embed_document(text)
    return SparseVector(list(vector.indices), list(vector.values))


def bm25_query(text: str) -> SparseVector:
    """The BM25 sparse vector of a query (each distinct token weighs 1)."""
    vector = _bm25().embed_query(text)
    return SparseVector(list(vector.indices), list(vector.values))


def check_query(
    mode: str, dense: Sequence[float] | None, sparse: SparseVector | None, limit: int, rrf_k: int
) -> None:
    """Raise ValueError naming the argument when a query cannot be run as asked."""
    if mode not in QUERY_MODES:
        raise ValueError(f"query mode {mode!r} is not one of {', '.join(QUERY_MODES)}")
    if mode in ("dense", "hybrid") and dense is None:
        raise ValueError(f"a {mode} query needs the dense query vector")
    if mode in ("sparse", "hybrid") and sparse is None:
        raise ValueError(f"a {mode} query needs the sparse query vector")
    if limit < 1:
        raise ValueError(f"query limit must be >= 1, got {limit}")
    if rrf_k < 1:
        raise ValueError(f"rrf_k must be >= 1, got {rrf_k}")
    if dense is not None and not all(math.isfinite(x) for x in dense):
        raise ValueError("the dense query vector holds NaN or infinite values")


def prefetch_limit(limit: int) -> int:
    """How many candidates each side of a hybrid query contributes to the fusion."""
    return max(4 * limit, 20)


class VectorStore(ABC):
    """Collections of points with dense and sparse vectors, and aliases naming them.

    Collection names are physical names; :meth:`query`, :meth:`scroll` and
    :meth:`count` also accept an alias. A store is opened by its resource and
    closed by it (:meth:`close`).
    """

    @abstractmethod
    def describe(self) -> str:
        """Where the store is (a folder or a URL; no secrets)."""

    @abstractmethod
    def list_collections(self) -> list[str]:
        """Every collection's name."""

    @abstractmethod
    def collection_exists(self, name: str) -> bool:
        """Whether the collection (not an alias) exists."""

    @abstractmethod
    def create_collection(self, name: str, spec: CollectionSpec) -> None:
        """Create the collection with its vectors and payload indexes."""

    @abstractmethod
    def collection_spec(self, name: str) -> CollectionSpec:
        """The vector settings the collection was created with."""

    @abstractmethod
    def delete_collection(self, name: str) -> None:
        """Delete the collection and its points."""

    @abstractmethod
    def upsert(self, name: str, points: Sequence[IndexPoint]) -> None:
        """Write points (a repeated id overwrites)."""

    @abstractmethod
    def set_payload(self, name: str, ids: Sequence[str], payload: dict[str, Any]) -> None:
        """Set payload keys on existing points, keeping their vectors."""

    @abstractmethod
    def delete(self, name: str, ids: Sequence[str]) -> None:
        """Delete points by id."""

    @abstractmethod
    def delete_where(self, name: str, key: str, values: Sequence[str]) -> None:
        """Delete the points whose payload ``key`` is one of ``values``."""

    @abstractmethod
    def scroll(
        self,
        name: str,
        where: tuple[str, Sequence[str]] | None = None,
        fields: Sequence[str] | bool = True,
        with_vectors: bool = False,
        page: int = 2048,
    ) -> Iterator[Record]:
        """Every point (or those whose payload ``where[0]`` is one of ``where[1]``)."""

    @abstractmethod
    def count(self, name: str) -> int:
        """Exact number of points."""

    def existing(self, name: str, ids: Sequence[str]) -> set[str]:
        """The ids of ``ids`` that the collection holds (looked up by id, no payload read)."""
        found: set[str] = set()
        for start in range(0, len(ids), ID_PAGE):
            found.update(self._existing_page(name, list(ids[start : start + ID_PAGE])))
        return found

    @abstractmethod
    def _existing_page(self, name: str, ids: list[str]) -> list[str]:
        """The ids of one page of ``ids`` (at most ``ID_PAGE``) that the collection holds."""

    @abstractmethod
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
        """The ``limit`` best points: by the dense vector, by BM25, or both fused (RRF).

        ``weights`` weigh the dense and the sparse ranking in the fusion.
        """

    @abstractmethod
    def read_alias(self, alias: str) -> AliasState | None:
        """Where the alias points, with its record; None when it was never created.

        Raises:
            DamagedIndexError: the alias's state is missing or unreadable.
        """

    @abstractmethod
    def swap_alias(
        self, alias: str, target: str, expected: str | None, record: dict[str, Any]
    ) -> None:
        """Point ``alias`` at ``target`` with ``record``, if it still points at ``expected``.

        The alias and its record change together in one atomic step; readers see
        the old state or the new one, never a mix.

        Raises:
            AliasConflictError: the alias points elsewhere than ``expected`` (another
                promotion or rollback came first); nothing was changed.
        """

    @abstractmethod
    def close(self) -> None:
        """Release the store (files, locks, connections)."""

    def check_spec(self, name: str, spec: CollectionSpec) -> None:
        """Raise DimensionMismatchError if the collection stores other vectors than ``spec``."""
        why = self.collection_spec(name).vectors_differ(spec)
        if why:
            raise DimensionMismatchError(
                f"collection {name!r} in {self.describe()}: {why}; use another collection "
                "name or delete the collection"
            )

    def resolve(self, name: str) -> str:
        """The collection behind ``name``: itself, or the one its alias points at."""
        if self.collection_exists(name):
            return name
        state = self.read_alias(name)
        if state is None:
            raise ValueError(f"no collection or alias named {name!r} in {self.describe()}")
        return state.collection
