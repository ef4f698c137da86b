"""Blue/green alias management on a real (embedded) Qdrant, and the rollback command."""

import json

import numpy as np
import pytest
from qdrant_client import QdrantClient, models

from genai_assets.rag import rollback
from genai_assets.rag.blue_green import BlueGreenError, BlueGreenIndex

V1, V2, V3, V4 = (f"documents-{c * 12}" for c in "abcd")


def make_collection(client: QdrantClient, name: str) -> None:
    client.create_collection(
        name, vectors_config=models.VectorParams(size=4, distance=models.Distance.COSINE)
    )
    client.upsert(
        name,
        points=[models.PointStruct(id=1, vector=np.ones(4).tolist(), payload={"collection": name})],
    )


def served(client: QdrantClient, alias: str = "documents") -> str:
    """The collection a reader gets through the alias."""
    [point] = client.query_points(alias, query=[1.0, 1.0, 1.0, 1.0], limit=1).points
    return point.payload["collection"]


@pytest.fixture
def client():
    client = QdrantClient(location=":memory:")
    for name in (V1, V2, V3, V4):
        make_collection(client, name)
    yield client
    client.close()


def test_promote_swaps_the_alias_and_keeps_the_previous(client):
    index = BlueGreenIndex(client, "documents", keep_previous=2)
    assert index.live() is None
    first = index.promote(V1)
    assert (first.action, first.live, first.previous_live) == ("promoted", V1, None)
    assert served(client) == V1
    second = index.promote(V2)
    assert (second.live, second.previous_live, second.kept) == (V2, V1, [V1])
    assert served(client) == V2
    statuses = {v.name: v.status for v in index.versions()}
    assert statuses == {V1: "previous", V2: "live", V3: "candidate", V4: "candidate"}


def test_already_live_is_a_no_op(client):
    index = BlueGreenIndex(client, "documents")
    index.promote(V1)
    result = index.promote(V1)
    assert result.action == "already_live"
    assert "in-place refresh" in result.message
    assert [e["event"] for e in index.history()] == ["promoted"]


def test_only_keep_previous_once_live_collections_survive(client):
    index = BlueGreenIndex(client, "documents", keep_previous=1)
    index.promote(V1)
    index.promote(V2)
    result = index.promote(V3)
    assert result.kept == [V2]
    assert result.deleted == [V1]
    assert not client.collection_exists(V1)
    assert client.collection_exists(V4)  # never live: not ours to delete


def test_rollback_walks_back_and_never_returns_to_a_rolled_back_collection(client):
    index = BlueGreenIndex(client, "documents", keep_previous=3)
    for name in (V1, V2, V3):
        index.promote(name)
    result = index.rollback(reason="bad answers")
    assert (result.action, result.live, result.previous_live) == ("rolled_back", V2, V3)
    assert served(client) == V2
    assert index.rollback().live == V1
    assert served(client) == V1
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


def test_refusals(client):
    index = BlueGreenIndex(client, "documents")
    with pytest.raises(BlueGreenError, match="does not exist: nothing to roll back"):
        index.rollback()
    with pytest.raises(BlueGreenError, match="not a versioned collection"):
        index.promote("other")
    with pytest.raises(BlueGreenError, match="does not exist"):
        index.promote("documents-0123456789ab")
    index.promote(V1)
    with pytest.raises(BlueGreenError, match="no previous collection"):
        index.rollback()
    make_collection(client, "plain")
    clash = BlueGreenIndex(client, "plain")
    make_collection(client, "plain-aaaaaaaaaaaa")
    with pytest.raises(BlueGreenError, match="a collection named 'plain' exists"):
        clash.promote("plain-aaaaaaaaaaaa")


def test_rollback_command(tmp_path, capsys):
    path = tmp_path / "qdrant"
    client = QdrantClient(path=str(path))
    for name in (V1, V2):
        make_collection(client, name)
    index = BlueGreenIndex(client, "documents")
    index.promote(V1)
    index.promote(V2)
    client.close()

    assert rollback.main(["--location", str(path), "--status"]) == 0
    state = json.loads(capsys.readouterr().out)
    assert state["live"] == V2
    assert [(c["name"], c["status"]) for c in state["collections"]] == [
        (V2, "live"),
        (V1, "previous"),
    ]

    assert rollback.main(["--location", str(path), "--reason", "test"]) == 0
    assert capsys.readouterr().out.strip() == f"'documents' rolled back from {V2} to {V1}"
    assert rollback.main(["--location", str(path)]) == 1
    assert "no previous collection is kept" in capsys.readouterr().err

    client = QdrantClient(path=str(path))
    try:
        assert served(client) == V1
        # the command refuses clearly while another client holds the folder
        assert rollback.main(["--location", str(path), "--status"]) == 1
        assert "is open in another process" in capsys.readouterr().err
    finally:
        client.close()
    assert rollback.main(["--location", str(tmp_path / "nowhere")]) == 1
    assert "no local Qdrant storage" in capsys.readouterr().err
