"""The index interface on both engines: collections, points, filters, the three query modes."""

import uuid

import pytest

from genai_assets.rag.search import search
from genai_assets.rag.vector_store import (
    AliasConflictError,
    CollectionSpec,
    DimensionMismatchError,
    IndexPoint,
    bm25_document,
)
from genai_assets_tests.rag.engines import open_engine

TEXTS = [
    "Snapshots are kept for thirty days by the default retention policy.",
    "The vault lock makes a snapshot immutable until its retention ends.",
    "Error E4012 means the replication target is unreachable.",
    "Install the agent with the package manager of your distribution.",
]


def pid(i: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"point-{i}"))


def one_hot(i: int, size: int = 4) -> list[float]:
    return [1.0 if j == i else 0.0 for j in range(size)]


def fill(store, name="c-000000000000"):
    store.create_collection(name, CollectionSpec(4))
    store.upsert(
        name,
        [
            IndexPoint(pid(i), one_hot(i), {"doc_id": f"d{i % 2}", "text": t}, bm25_document(t))
            for i, t in enumerate(TEXTS)
        ],
    )
    return name


def test_points_filters_and_deletes(store):
    name = fill(store)
    assert store.list_collections() == [name]
    assert store.collection_spec(name) == CollectionSpec(4)
    assert store.count(name) == 4
    d0 = {r.id for r in store.scroll(name, where=("doc_id", ["d0"]), fields=["doc_id"])}
    assert d0 == {pid(0), pid(2)}
    [record] = [r for r in store.scroll(name, with_vectors=True) if r.id == pid(1)]
    assert record.dense == pytest.approx(one_hot(1))
    assert record.sparse == bm25_document(TEXTS[1])
    store.set_payload(name, [pid(1)], {"doc_hash": "h"})
    [record] = [r for r in store.scroll(name) if r.id == pid(1)]
    assert record.payload == {"doc_id": "d1", "text": TEXTS[1], "doc_hash": "h"}
    store.delete(name, [pid(3)])
    assert store.count(name) == 3
    store.delete_where(name, "doc_id", ["d0"])
    assert [r.id for r in store.scroll(name)] == [pid(1)]
    with pytest.raises(DimensionMismatchError, match="4-dimensional vectors but 8"):
        store.check_spec(name, CollectionSpec(8))
    store.delete_collection(name)
    assert not store.collection_exists(name) and store.list_collections() == []


def test_dense_sparse_and_hybrid_queries(store):
    name = fill(store)
    encode = lambda texts: [one_hot(1) for _ in texts]  # noqa: E731 - "the model" says point 1
    query = ["what does error E4012 mean"]
    every = {"per_document": None}  # the engine's rankings, all chunks of a document
    [dense] = search(store, name, query, encode, k=2, mode="dense", **every)
    assert dense[0].id == pid(1)
    [sparse] = search(store, name, query, None, k=2, mode="sparse", **every)
    assert sparse[0].id == pid(2)  # the exact error code, which an embedding can miss
    [hybrid] = search(store, name, query, encode, k=4, mode="hybrid", rrf_k=60, **every)
    assert {hybrid[0].id, hybrid[1].id} == {pid(1), pid(2)}  # both rankings' best, fused
    # Reciprocal rank fusion as Qdrant does it: each ranking adds 1 / (k + rank), rank from 0.
    [dense_all] = search(store, name, query, encode, k=4, mode="dense", **every)
    [sparse_all] = search(store, name, query, None, k=4, mode="sparse", **every)
    fused = {}
    for ranking in (dense_all, sparse_all):
        for rank, hit in enumerate(ranking):
            fused[hit.id] = fused.get(hit.id, 0.0) + 1 / (60 + rank)
    assert {h.id: h.score for h in hybrid} == pytest.approx(fused)
    [weighted] = search(store, name, query, encode, k=4, mode="hybrid", rrf_k=60, **every)
    assert [h.id for h in weighted][:2] == [h.id for h in hybrid][:2]
    hits = store.query(
        name,
        mode="hybrid",
        dense=one_hot(1),
        sparse=bm25_document("E4012"),
        limit=2,
        weights=(1.0, 3.0),
    )
    assert hits[0].id == pid(2)  # the sparse ranking weighs three times as much
    with pytest.raises(ValueError, match="query mode 'fuzzy'"):
        search(store, name, query, encode, mode="fuzzy")
    with pytest.raises(ValueError, match="needs the embedding model"):
        search(store, name, query, None, mode="hybrid")


def test_search_keeps_the_best_chunk_of_each_document_by_default(store):
    # Points 0 and 2 belong to document d0, 1 and 3 to d1. The dense ranking for
    # "point 0" puts d0's two chunks first; readers get d0's best, then d1's best.
    name = fill(store)
    query = ["retention"]
    encode = lambda texts: [[1.0, 0.0, 0.9, 0.1] for _ in texts]  # noqa: E731
    [every] = search(store, name, query, encode, k=2, mode="dense", per_document=None)
    assert [h.id for h in every] == [pid(0), pid(2)]
    [default] = search(store, name, query, encode, k=2, mode="dense")
    assert [h.id for h in default] == [pid(0), pid(3)]
    assert [h.payload["doc_id"] for h in default] == ["d0", "d1"]
    [two] = search(store, name, query, encode, k=4, mode="dense", per_document=2)
    assert [h.id for h in two] == [pid(0), pid(2), pid(3), pid(1)]
    with pytest.raises(ValueError, match="per_document must be at least 1"):
        search(store, name, query, encode, per_document=0)


def test_dense_only_collection_refuses_sparse_search(store):
    store.create_collection("old-000000000000", CollectionSpec(4, sparse_model=None))
    store.upsert("old-000000000000", [IndexPoint(pid(0), one_hot(0), {"text": "x"})])
    with pytest.raises(ValueError, match="has no BM25 sparse vectors"):
        search(store, "old-000000000000", ["x"], None, mode="sparse")
    [hits] = search(store, "old-000000000000", ["x"], lambda t: [one_hot(0)], mode="dense")
    assert hits[0].id == pid(0)


def test_alias_compare_and_swap_and_query_through_it(store):
    a = fill(store, "c-aaaaaaaaaaaa")
    b = fill(store, "c-bbbbbbbbbbbb")
    assert store.read_alias("c") is None
    store.swap_alias("c", a, None, {"versions": {a: {"status": "live"}}})
    state = store.read_alias("c")
    assert (state.collection, state.record) == (a, {"versions": {a: {"status": "live"}}})
    assert store.resolve("c") == a
    assert store.query("c", dense=one_hot(0), limit=1)[0].id == pid(0)
    with pytest.raises(AliasConflictError, match="points at c-aaaaaaaaaaaa but this swap expected"):
        store.swap_alias("c", b, None, {})
    store.swap_alias("c", b, a, {"versions": {}})
    assert store.read_alias("c").collection == b


def test_collections_persist_across_opens(engine, tmp_path):
    store = open_engine(engine, tmp_path)
    name = fill(store)
    store.swap_alias("c", name, None, {})
    store.close()
    reopened = open_engine(engine, tmp_path)
    try:
        assert reopened.count(name) == 4
        assert reopened.read_alias("c").collection == name
        assert reopened.query("c", mode="sparse", sparse=bm25_document("E4012"), limit=1)[
            0
        ].id == pid(2)
    finally:
        reopened.close()


def test_resource_search_reads_behind_the_alias(tmp_path):
    from genai_assets.resources.qdrant import QdrantResource

    resource = QdrantResource(location=str(tmp_path / "index"), collection="c")
    with resource.open() as store:
        name = fill(store, "c-aaaaaaaaaaaa")
        store.swap_alias("c", name, None, {})
    [hits] = resource.search(["error E4012"], None, k=1, mode="sparse")
    assert hits[0].payload["text"] == TEXTS[2]
    [hits] = resource.search(["error E4012"], lambda t: [one_hot(1)], k=2, mode="hybrid")
    assert {h.payload["text"] for h in hits} == {TEXTS[1], TEXTS[2]}


def test_server_collection_of_the_previous_version_is_named_as_such():
    from qdrant_client import QdrantClient, models

    from genai_assets.rag.server_store import ServerStore

    # qdrant-client's in-memory mode: the stand-in for a Qdrant server's API.
    client = QdrantClient(location=":memory:")
    client.create_collection(
        "documents-aaaaaaaaaaaa",
        vectors_config=models.VectorParams(size=4, distance=models.Distance.COSINE),
    )
    store = ServerStore(client, "server stand-in")
    with pytest.raises(DimensionMismatchError, match="written by the previous version"):
        store.check_spec("documents-aaaaaaaaaaaa", CollectionSpec(4))
    store.close()
