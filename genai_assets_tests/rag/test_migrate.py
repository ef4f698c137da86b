"""The previous version's embedded index (qdrant-client local mode) is detected and migrated."""

import json

import numpy as np
import pytest
from qdrant_client import QdrantClient, models

from genai_assets.rag import migrate
from genai_assets.rag.blue_green import BlueGreenIndex
from genai_assets.rag.edge_store import EdgeStore
from genai_assets.rag.vector_store import SPARSE_MODEL, LegacyStorageError, bm25_document
from genai_assets.resources.qdrant import QdrantResource

OLD, LIVE = "documents-aaaaaaaaaaaa", "documents-bbbbbbbbbbbb"


def write_previous_version(folder):
    """What the previous version left: unnamed dense vectors, aliases, history in metadata."""
    client = QdrantClient(path=str(folder))
    rng = np.random.default_rng(0)
    for n, name in enumerate((OLD, LIVE)):
        client.create_collection(
            name, vectors_config=models.VectorParams(size=8, distance=models.Distance.COSINE)
        )
        client.upsert(
            name,
            points=models.Batch(
                ids=[f"00000000-0000-0000-0000-{i:012d}" for i in range(300 + n)],
                vectors=rng.normal(size=(300 + n, 8)).tolist(),
                payloads=[
                    {"doc_id": f"d{i}", "text": f"chunk {i} about snapshots"}
                    for i in range(300 + n)
                ],
            ),
        )
    client.update_collection_aliases(
        change_aliases_operations=[
            models.CreateAliasOperation(
                create_alias=models.CreateAlias(collection_name=LIVE, alias_name="documents")
            )
        ]
    )
    records = {
        OLD: {"status": "previous", "retired_at": "2026-11-02"},
        LIVE: {"status": "live", "promoted_at": "2026-11-02"},
    }
    for name, record in records.items():
        promoted = record.get("promoted_at", "2026-11-01")
        events = [{"at": promoted, "event": "promoted"}]
        client.update_collection(name, metadata={"blue_green": {**record, "events": events}})
    expected = {
        name: {
            str(p.id): (p.payload, p.vector)
            for p in client.scroll(name, limit=1000, with_vectors=True)[0]
        }
        for name in (OLD, LIVE)
    }
    client.close()
    (folder / "genai_assets_sync").mkdir()
    (folder / "genai_assets_sync" / f"{LIVE}.json").write_text(json.dumps({"format": 2}))
    return expected


def test_previous_storage_is_detected_then_migrated_without_re_embedding(dagster_home, capsys):
    legacy = dagster_home / "storage" / "qdrant"
    expected = write_previous_version(legacy)
    with pytest.raises(LegacyStorageError) as error:
        QdrantResource().connect()
    message = str(error.value)
    assert "python -m genai_assets.rag.migrate" in message and str(legacy) in message

    assert migrate.main([]) == 0
    assert f"{LIVE}: 301 points" in capsys.readouterr().out
    assert not legacy.exists() and (legacy.parent / "qdrant.migrated").is_dir()
    with QdrantResource().open() as store:
        assert isinstance(store, EdgeStore)
        for name, points in expected.items():
            copied = {r.id: r for r in store.scroll(name, with_vectors=True)}
            assert copied.keys() == points.keys()
            for pid, (payload, vector) in points.items():
                assert copied[pid].payload == payload
                assert copied[pid].dense == pytest.approx(vector, abs=1e-6)
                assert copied[pid].sparse == bm25_document(payload["text"])
        index = BlueGreenIndex(store, "documents")
        assert index.live() == LIVE
        assert {v.name: v.status for v in index.versions()} == {LIVE: "live", OLD: "previous"}
        assert index.rollback().live == OLD  # the history came along
    summary = dagster_home / "storage" / "index" / "genai_assets_sync" / f"{LIVE}.json"
    assert json.loads(summary.read_text()) == {"format": 2}


def test_a_folder_that_is_not_local_mode_is_refused(tmp_path, capsys):
    assert migrate.main(["--source", str(tmp_path), "--target", str(tmp_path / "t")]) == 1
    assert "is not qdrant-client local-mode storage" in capsys.readouterr().err


def test_local_mode_folder_given_as_the_edge_location_is_refused(tmp_path):
    write_previous_version(tmp_path / "old")
    with pytest.raises(
        LegacyStorageError, match="migrate it with `python -m genai_assets.rag.migrate"
    ):
        QdrantResource(location=str(tmp_path / "old")).connect()


def test_only_a_sparse_model_other_than_the_default_changes_the_fingerprint():
    """The default BM25 model is implied, so the migration's added BM25 vectors keep the name."""
    from genai_assets.rag.versioning import IngestSettings

    def settings(**sparse):
        return IngestSettings(
            "m", 254, 32, model_revision="r", device="cpu", dtype="fp32", **sparse
        )

    assert settings().fingerprint() == settings(sparse_model=SPARSE_MODEL).fingerprint()
    assert settings(sparse_model="other-bm25").fingerprint() != settings().fingerprint()
