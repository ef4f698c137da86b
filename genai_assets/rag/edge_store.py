"""The embedded vector index: Qdrant Edge shards in a local folder.

Qdrant Edge is Qdrant's engine as an in-process library; it knows shards, not
collections or aliases. This adapter adds both, in plain files:

    <root>/collections/<name>/collection.json   what the collection stores (its spec)
    <root>/collections/<name>/shard/            the Qdrant Edge shard (WAL, segments)
    <root>/aliases/<alias>.json                 the alias: its collection and record
    <root>/aliases/<alias>.history.jsonl        one line per swap, appended after it
    <root>/aliases/<alias>.lock                 held while a swap compares and writes

``collection.json`` is written last when a collection is created and removed
first when it is deleted, so a folder without it is a leftover of an interrupted
create or delete and is cleared. The alias files are
:mod:`genai_assets.rag.edge_aliases`.

A clean close records the shard's point count (and that its points carry
payloads) in ``collection.json``; the first write of a session removes that
record, so a process killed while writing leaves none, and the next open
trusts the shard's WAL. Every damage found (missing or unreadable files, a
shard with other vector settings than its spec, fewer points or lost payloads
against the clean-close record) raises :class:`DamagedIndexError` naming the
folder and how to recover; a shard open in another process raises
:class:`IndexLockedError`.
"""

import json
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import qdrant_edge as edge

from genai_assets.rag.edge_aliases import AliasFiles, write_atomically
from genai_assets.rag.vector_store import (
    DEFAULT_RRF_K,
    DENSE,
    SPARSE,
    AliasState,
    CollectionSpec,
    DamagedIndexError,
    Hit,
    IndexLockedError,
    IndexPoint,
    LegacyStorageError,
    QueryMode,
    Record,
    SparseVector,
    VectorStore,
    check_query,
    prefetch_limit,
)

SPEC_FILE = "collection.json"
SHARD_DIR = "shard"
VERIFY_SAMPLE = 64
# What Qdrant Edge says when a file it reads is shorter or other than it wrote.
DAMAGE_SIGNS = ("out of bounds", "IO error", "corrupt", "No such file", "unexpected end")
REBUILD = (
    "rebuild it from the sources: delete {folder} and materialize document_embeddings "
    "(then rag_quality_metrics and rag_serving_index) again"
)


def is_local_mode_folder(path: Path) -> bool:
    """Whether ``path`` holds qdrant-client local-mode storage (the previous embedded engine)."""
    return (path / "meta.json").is_file() and (path / "collection").is_dir()


def _sparse(vector: SparseVector) -> edge.SparseVector:
    return edge.SparseVector(vector.indices, vector.values)


class EdgeStore(VectorStore):
    """Collections and aliases on Qdrant Edge shards under ``root``.

    Shards are opened on first use and stay open (holding their lock) until
    :meth:`close`, which flushes and, for shards written to, builds their vector
    indexes so the next reader's queries are fast.
    """

    def __init__(self, root: Path):
        self.root = Path(root)
        if is_local_mode_folder(self.root):
            raise LegacyStorageError(
                f"{self.root} holds qdrant-client local-mode storage, the previous embedded "
                f"engine; migrate it with `python -m genai_assets.rag.migrate --source {self.root}"
                " --target <new folder>` (vectors are copied, nothing is re-embedded)"
            )
        self._aliases = AliasFiles(self.root, self.collection_exists)
        self._shards: dict[str, edge.EdgeShard] = {}
        self._written: set[str] = set()

    # Layout
    def collection_dir(self, name: str) -> Path:
        """The folder of a collection."""
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"invalid collection name {name!r}")
        return self.root / "collections" / name

    def describe(self) -> str:
        """The folder."""
        return str(self.root)

    # Collections
    def list_collections(self) -> list[str]:
        """Collections with a spec (leftovers of interrupted creates are not collections)."""
        folder = self.root / "collections"
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if (p / SPEC_FILE).is_file())

    def collection_exists(self, name: str) -> bool:
        """Whether the collection's spec exists."""
        return (self.collection_dir(name) / SPEC_FILE).is_file()

    def _edge_config(self, spec: CollectionSpec) -> edge.EdgeConfig:
        if spec.distance != "cosine":
            raise ValueError(f"distance {spec.distance!r} is not supported (only cosine)")
        sparse = (
            {SPARSE: edge.EdgeSparseVectorParams(modifier=edge.Modifier.Idf)}
            if spec.sparse_model
            else None
        )
        return edge.EdgeConfig(
            vectors={
                DENSE: edge.EdgeVectorParams(size=spec.dimension, distance=edge.Distance.Cosine)
            },
            sparse_vectors=sparse,
        )

    def create_collection(self, name: str, spec: CollectionSpec) -> None:
        """Create the shard, its payload indexes, then the spec (the commit point)."""
        folder = self.collection_dir(name)
        if self.collection_exists(name):
            raise ValueError(f"collection {name!r} already exists in {self.root}")
        if folder.exists():  # an interrupted create or delete left it; it was never complete
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        shard = self._guarded_open(
            folder, lambda: edge.EdgeShard.create(str(folder / SHARD_DIR), self._edge_config(spec))
        )
        for key in spec.keyword_indexes:
            # A filter by document id selects a dozen points: the index answers it from its
            # memory-mapped file (about a millisecond) without being read into memory at
            # every open, and needs no graph links per value in the HNSW build.
            shard.update(
                edge.UpdateOperation.create_field_index(
                    key, edge.KeywordIndexParams(enable_hnsw=False, memory=edge.Memory.Cold)
                )
            )
        shard.flush()
        write_atomically(folder / SPEC_FILE, json.dumps({"spec": spec.to_json()}, indent=2))
        self._shards[name] = shard
        self._written.add(name)

    def collection_spec(self, name: str) -> CollectionSpec:
        """The spec in ``collection.json``."""
        path = self.collection_dir(name) / SPEC_FILE
        try:
            return CollectionSpec.from_json(json.loads(path.read_text())["spec"])
        except FileNotFoundError:
            raise ValueError(f"collection {name!r} does not exist in {self.root}") from None
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise DamagedIndexError(
                f"the spec {path} of collection {name!r} is unreadable ({error}); "
                + REBUILD.format(folder=path.parent)
            ) from error

    def _guarded_open(self, folder: Path, open_shard: Any) -> edge.EdgeShard:
        try:
            return open_shard()
        except Exception as error:  # qdrant_edge raises plain Exceptions; classified here
            message = str(error)
            if "WouldBlock" in message:
                raise IndexLockedError(
                    f"the index folder {folder} is open in another process (a step running in "
                    "parallel, or `dagster dev` holding it); run the steps one after another, "
                    "or point the qdrant resource at a Qdrant server `url`"
                ) from error
            if "ncompatible" in message:
                raise DamagedIndexError(
                    f"the shard in {folder} was written with other vector settings than its "
                    f"{SPEC_FILE} says ({message}); " + REBUILD.format(folder=folder)
                ) from error
            raise DamagedIndexError(
                f"the shard in {folder} cannot be opened ({message}): its files are damaged "
                "(truncated or partly deleted); " + REBUILD.format(folder=folder)
            ) from error

    def _shard(self, name: str) -> edge.EdgeShard:
        if name in self._shards:
            return self._shards[name]
        collection = name if self.collection_exists(name) else self.resolve(name)
        if collection in self._shards:
            return self._shards[collection]
        spec = self.collection_spec(collection)
        folder = self.collection_dir(collection)
        shard_dir = folder / SHARD_DIR
        if not (shard_dir / "edge_config.json").is_file() or not (shard_dir / "segments").is_dir():
            raise DamagedIndexError(
                f"the shard of collection {collection!r} is missing from {folder} (its "
                f"{SPEC_FILE} is there); " + REBUILD.format(folder=folder)
            )
        shard = self._guarded_open(
            folder, lambda: edge.EdgeShard.load(str(shard_dir), self._edge_config(spec))
        )
        self._shards[collection] = shard
        try:
            self._verify(collection, shard)
        except DamagedIndexError:
            self._shards.pop(collection).close()
            raise
        return shard

    def _verify(self, name: str, shard: edge.EdgeShard) -> None:
        """Check the shard against what its last clean close recorded.

        Qdrant Edge opens some damaged shards without an error (a truncated id or
        payload tracker loses points or payloads silently). The last clean close
        recorded the point count and that every point carried a payload; a shard
        written since (a run killed before closing) has no record and is trusted
        to its WAL.
        """
        verified = self._spec_file(name).get("verified")
        if not verified:
            return
        folder = self.collection_dir(name)
        with self._engine_errors(name):
            found = shard.count(edge.CountRequest(exact=True))
            sample, _ = shard.scroll(edge.ScrollRequest(limit=VERIFY_SAMPLE, with_payload=True))
        if found != verified["points"]:
            raise DamagedIndexError(
                f"the shard in {folder} holds {found} points but was closed with "
                f"{verified['points']}: its files are damaged; " + REBUILD.format(folder=folder)
            )
        if verified.get("payloads") and any(not record.payload for record in sample):
            raise DamagedIndexError(
                f"points of the shard in {folder} lost their payload (text, source): its files "
                "are damaged; " + REBUILD.format(folder=folder)
            )

    def _spec_file(self, name: str) -> dict[str, Any]:
        return json.loads((self.collection_dir(name) / SPEC_FILE).read_text())

    def _write_spec_file(self, name: str, data: dict[str, Any]) -> None:
        write_atomically(self.collection_dir(name) / SPEC_FILE, json.dumps(data, indent=2))

    def _for_writing(self, name: str) -> edge.EdgeShard:
        """The shard of collection ``name``, its clean-close record dropped before a first write."""
        if not self.collection_exists(name):
            raise ValueError(f"collection {name!r} does not exist in {self.root}")
        shard = self._shard(name)
        if name not in self._written:
            data = self._spec_file(name)
            if data.pop("verified", None) is not None:
                self._write_spec_file(name, data)
            self._written.add(name)
        return shard

    @contextmanager
    def _engine_errors(self, name: str) -> Iterator[None]:
        """Report the engine's errors about unreadable files as damage of the collection."""
        try:
            yield
        except Exception as error:  # qdrant_edge raises plain Exceptions; classified here
            message = str(error)
            if not any(sign in message for sign in DAMAGE_SIGNS):
                raise
            folder = self.collection_dir(self.resolve(name))
            raise DamagedIndexError(
                f"the shard in {folder} is damaged ({message}); " + REBUILD.format(folder=folder)
            ) from error

    def delete_collection(self, name: str) -> None:
        """Remove the spec (the collection is gone), then its files."""
        folder = self.collection_dir(name)
        shard = self._shards.pop(name, None)
        if shard is None and self.collection_exists(name):
            # Opening takes the shard's lock: refuses while another process uses it.
            shard = self._guarded_open(folder, lambda: edge.EdgeShard.load(str(folder / SHARD_DIR)))
        if shard is not None:
            shard.close()
        self._written.discard(name)
        (folder / SPEC_FILE).unlink(missing_ok=True)
        if folder.exists():
            shutil.rmtree(folder)

    # Points
    def upsert(self, name: str, points: Sequence[IndexPoint]) -> None:
        """Write points with their dense and (if any) sparse vectors."""
        if not points:
            return
        shard = self._for_writing(name)
        operation = edge.UpdateOperation.upsert_points(edge_points(points))
        with self._engine_errors(name):
            shard.update(operation)

    def set_payload(self, name: str, ids: Sequence[str], payload: dict[str, Any]) -> None:
        """Set payload keys on points."""
        if ids:
            shard = self._for_writing(name)
            with self._engine_errors(name):
                shard.update(edge.UpdateOperation.set_payload(list(ids), payload))

    def delete(self, name: str, ids: Sequence[str]) -> None:
        """Delete points by id."""
        if ids:
            shard = self._for_writing(name)
            with self._engine_errors(name):
                shard.update(edge.UpdateOperation.delete_points(list(ids)))

    def delete_where(self, name: str, key: str, values: Sequence[str]) -> None:
        """Delete points by a payload value."""
        if values:
            shard = self._for_writing(name)
            with self._engine_errors(name):
                shard.update(edge.UpdateOperation.delete_points_by_filter(_match_any(key, values)))

    def scroll(
        self,
        name: str,
        where: tuple[str, Sequence[str]] | None = None,
        fields: Sequence[str] | bool = True,
        with_vectors: bool = False,
        page: int = 2048,
    ) -> Iterator[Record]:
        """Points page by page."""
        shard = self._shard(name)
        only = _match_any(*where) if where is not None else None
        with_payload = list(fields) if not isinstance(fields, bool) else fields
        offset = None
        while True:
            with self._engine_errors(name):
                records, offset = shard.scroll(
                    edge.ScrollRequest(
                        offset=offset,
                        limit=page,
                        filter=only,
                        with_payload=with_payload,
                        with_vector=with_vectors,
                    )
                )
            for record in records:
                yield _record(record, with_vectors)
            if offset is None:
                return

    def count(self, name: str) -> int:
        """Exact count."""
        shard = self._shard(name)
        with self._engine_errors(name):
            return shard.count(edge.CountRequest(exact=True))

    def _existing_page(self, name: str, ids: list[str]) -> list[str]:
        shard = self._shard(name)
        with self._engine_errors(name):
            records = shard.retrieve(ids, with_payload=False, with_vector=False)
        return [str(record.id) for record in records]

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
        """Dense, sparse or hybrid (RRF) query."""
        check_query(mode, dense, sparse, limit, rrf_k)
        shard = self._shard(name)
        if mode == "dense":
            request = edge.QueryRequest(
                limit=limit, query=edge.Query.Nearest(list(dense), using=DENSE), with_payload=True
            )
        elif mode == "sparse":
            request = edge.QueryRequest(
                limit=limit,
                query=edge.Query.Nearest(_sparse(sparse), using=SPARSE),
                with_payload=True,
            )
        else:
            depth = prefetch_limit(limit)
            request = edge.QueryRequest(
                limit=limit,
                prefetches=[
                    edge.Prefetch(limit=depth, query=edge.Query.Nearest(list(dense), using=DENSE)),
                    edge.Prefetch(
                        limit=depth, query=edge.Query.Nearest(_sparse(sparse), using=SPARSE)
                    ),
                ],
                query=edge.Fusion.Rrf(k=rrf_k, weights=list(weights) if weights else None),
                with_payload=True,
            )
        with self._engine_errors(name):
            found = shard.query(request)
        return [Hit(str(p.id), float(p.score), dict(p.payload or {})) for p in found]

    # Aliases
    def read_alias(self, alias: str) -> AliasState | None:
        """The pointer file; a lost or unreadable one is damage."""
        return self._aliases.read(alias)

    def swap_alias(
        self, alias: str, target: str, expected: str | None, record: dict[str, Any]
    ) -> None:
        """Compare, then replace the pointer atomically; the history line follows it."""
        if not self.collection_exists(target):
            raise ValueError(f"collection {target!r} does not exist in {self.root}")
        self._aliases.swap(alias, target, expected, record)

    def close(self) -> None:
        """Build the vector indexes of written shards, record them, flush and close every shard.

        Every shard is closed (releasing its lock) even when another one fails;
        the first failure is raised after all of them.
        """
        shards, self._shards = self._shards, {}
        written, self._written = self._written, set()
        failure: BaseException | None = None
        for name, shard in shards.items():
            try:
                if name in written:
                    self._finish_writes(name, shard)
                shard.flush()
            except BaseException as error:  # raised below, once every shard is closed
                failure = failure or error
            finally:
                shard.close()
        if failure is not None:
            raise failure

    def _finish_writes(self, name: str, shard: edge.EdgeShard) -> None:
        """Index the new points, then record the clean close that :meth:`_verify` checks."""
        shard.optimize()
        shard.flush()
        points = shard.count(edge.CountRequest(exact=True))
        sample, _ = shard.scroll(edge.ScrollRequest(limit=VERIFY_SAMPLE, with_payload=True))
        data = self._spec_file(name)
        data["verified"] = {"points": points, "payloads": all(r.payload for r in sample)}
        self._write_spec_file(name, data)


def edge_points(points: Sequence[IndexPoint]) -> list[edge.Point]:
    """The engine's points: converting the payloads takes most of an upsert's time."""
    return [
        edge.Point(
            p.id,
            {DENSE: p.dense, SPARSE: _sparse(p.sparse)} if p.sparse else {DENSE: p.dense},
            p.payload,
        )
        for p in points
    ]


def _match_any(key: str, values: Sequence[str]) -> edge.Filter:
    return edge.Filter(must=[edge.FieldCondition(key=key, match=edge.MatchAny(any=list(values)))])


def _record(record: Any, with_vectors: bool) -> Record:
    dense = sparse = None
    if with_vectors and isinstance(record.vector, dict):
        dense = record.vector.get(DENSE)
        found = record.vector.get(SPARSE)
        if found is not None:
            sparse = SparseVector(list(found.indices), list(found.values))
    return Record(str(record.id), dict(record.payload or {}), dense, sparse)
