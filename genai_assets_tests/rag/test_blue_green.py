"""Blue/green alias management on both index engines, and the rollback command."""

import json

import pytest

from genai_assets.rag import rollback
from genai_assets.rag.blue_green import BlueGreenError, BlueGreenIndex
from genai_assets.rag.vector_store import CollectionSpec, IndexPoint, VectorStore
from genai_assets_tests.rag.engines import open_engine

V1, V2, V3, V4 = (f"documents-{c * 12}" for c in "abcd")


def make_collection(store: VectorStore, name: str) -> None:
    store.create_collection(name, CollectionSpec(4))
    store.upsert(name, [IndexPoint("00000000-0000-0000-0000-000000000001", [1.0] * 4, {"c": name})])


def served(store: VectorStore, alias: str = "documents") -> str:
    """The collection a reader gets through the alias."""
    [hit] = store.query(alias, dense=[1.0, 1.0, 1.0, 1.0], limit=1)
    return hit.payload["c"]


@pytest.fixture
def index_store(store):
    for name in (V1, V2, V3, V4):
        make_collection(store, name)
    return store


def test_promote_swaps_the_alias_and_keeps_the_previous(index_store):
    index = BlueGreenIndex(index_store, "documents", keep_previous=2)
    assert index.live() is None
    first = index.promote(V1)
    assert (first.action, first.live, first.previous_live) == ("promoted", V1, None)
    assert served(index_store) == V1
    second = index.promote(V2)
    assert (second.live, second.previous_live, second.kept) == (V2, V1, [V1])
    assert served(index_store) == V2
    statuses = {v.name: v.status for v in index.versions()}
    assert statuses == {V1: "previous", V2: "live", V3: "candidate", V4: "candidate"}


def test_already_live_is_a_no_op(index_store):
    index = BlueGreenIndex(index_store, "documents")
    index.promote(V1)
    result = index.promote(V1)
    assert result.action == "already_live"
    assert "in-place refresh" in result.message
    assert [e["event"] for e in index.history()] == ["promoted"]


def test_only_keep_previous_once_live_collections_survive(index_store):
    index = BlueGreenIndex(index_store, "documents", keep_previous=1)
    index.promote(V1)
    index.promote(V2)
    result = index.promote(V3)
    assert result.kept == [V2]
    assert result.deleted == [V1]
    assert not index_store.collection_exists(V1)
    assert index_store.collection_exists(V4)  # never live: not ours to delete


def test_rollback_walks_back_and_never_returns_to_a_rolled_back_collection(index_store):
    index = BlueGreenIndex(index_store, "documents", keep_previous=3)
    for name in (V1, V2, V3):
        index.promote(name)
    result = index.rollback(reason="bad answers")
    assert (result.action, result.live, result.previous_live) == ("rolled_back", V2, V3)
    assert served(index_store) == V2
    assert index.rollback().live == V1
    assert served(index_store) == V1
    with pytest.raises(BlueGreenError, match="no previous collection is kept"):
        index.rollback()
    statuses = {v.name: v.status for v in index.versions()}
    assert statuses == {V1: "live", V2: "rolled_back", V3: "rolled_back", V4: "candidate"}
    events = [(e["event"], e["collection"]) for e in index.history()]
    assert events == [
        ("promoted", V1),
        ("promoted", V2),
        ("retired", V1),
        ("promoted", V3),
        ("retired", V2),
        ("restored", V2),
        ("rolled_back", V3),
        ("restored", V1),
        ("rolled_back", V2),
    ]
    # a rolled-back collection can be promoted again (e.g. after a fix)
    assert index.promote(V3).live == V3


def test_swaps_are_compare_and_swap(index_store):
    index = BlueGreenIndex(index_store, "documents")
    index.promote(V1)
    index.promote(V2)
    # A run saw V1 live; a rollback or another promotion moved the alias since.
    with pytest.raises(BlueGreenError, match="points at documents-b+, not documents-a+"):
        index.promote(V3, expected=V1)
    with pytest.raises(BlueGreenError, match="not documents-c+ as expected"):
        index.rollback(expected=V3)
    assert index.live() == V2  # nothing was changed
    assert index.promote(V3, expected=V2).live == V3


def test_refusals(index_store):
    index = BlueGreenIndex(index_store, "documents")
    with pytest.raises(BlueGreenError, match="does not exist: nothing to roll back"):
        index.rollback()
    with pytest.raises(BlueGreenError, match="not a versioned collection"):
        index.promote("other")
    with pytest.raises(BlueGreenError, match="does not exist"):
        index.promote("documents-0123456789ab")
    index.promote(V1)
    with pytest.raises(BlueGreenError, match="no previous collection"):
        index.rollback()
    make_collection(index_store, "plain")
    clash = BlueGreenIndex(index_store, "plain")
    make_collection(index_store, "plain-aaaaaaaaaaaa")
    with pytest.raises(BlueGreenError, match="a collection named 'plain' exists"):
        clash.promote("plain-aaaaaaaaaaaa")


def test_rollback_command(tmp_path, capsys):
    store = open_engine("edge", tmp_path)
    for name in (V1, V2):
        make_collection(store, name)
    index = BlueGreenIndex(store, "documents")
    index.promote(V1)
    index.promote(V2)
    store.close()
    path = tmp_path / "edge"

    assert rollback.main(["--location", str(path), "--status"]) == 0
    state = json.loads(capsys.readouterr().out)
    assert state["live"] == V2
    assert [(c["name"], c["status"]) for c in state["collections"]] == [
        (V2, "live"),
        (V1, "previous"),
    ]
    assert rollback.main(["--location", str(path), "--expect", V1]) == 1
    assert "not documents-a" in capsys.readouterr().err

    assert rollback.main(["--location", str(path), "--reason", "test"]) == 0
    assert capsys.readouterr().out.strip() == f"'documents' rolled back from {V2} to {V1}"
    assert rollback.main(["--location", str(path)]) == 1
    assert "no previous collection is kept" in capsys.readouterr().err

    store = open_engine("edge", tmp_path)
    try:
        assert served(store) == V1
    finally:
        store.close()
    assert rollback.main(["--location", str(tmp_path / "nowhere")]) == 1
    assert "no local index" in capsys.readouterr().err
