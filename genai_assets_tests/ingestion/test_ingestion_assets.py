"""raw_documents -> document_embeddings through dg.materialize, real model, real Qdrant Edge."""

import os
import re
import signal
import subprocess
import sys
import textwrap

import dagster as dg
import pytest
from qdrant_client import QdrantClient

from genai_assets.defs.rag.assets import document_embeddings, raw_documents
from genai_assets.rag import precision as precision_module
from genai_assets.rag.edge_store import EdgeStore
from genai_assets.rag.model_files import PACKAGED_MODEL, model_revision
from genai_assets.resources.document_store import LocalDocumentStore
from genai_assets.resources.documents import DocumentSourcesResource
from genai_assets.resources.embeddings import SentenceTransformerResource
from genai_assets.resources.qdrant import QdrantResource

SECTION = "Skyline Vault keeps encrypted snapshots of every protected volume. "


def write_corpus(folder, n_docs=4):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n_docs):
        body = "\n\n".join(
            f"## Part {j}\n\n" + f"Document {i} part {j}. " + SECTION * (6 + i) for j in range(3)
        )
        (folder / f"doc{i}.md").write_text(f"# Document {i}\n\n{body}\n")
    # The same page copied under two names (boilerplate): its chunk is embedded once.
    legal = "# Legal\n\nCopyright Corvid Systems. Support: support@corvid.example.\n"
    (folder / "legal-a.md").write_text(legal)
    (folder / "legal-b.md").write_text(legal)


def resources(corpus, embedder=None):
    return {
        "document_sources": DocumentSourcesResource(sources=[str(corpus)]),
        # fp32 on CPU: the dtype probe is tested on its own; here we want fast, exact runs.
        "embedder": embedder
        or SentenceTransformerResource(device="cpu", dtype="fp32", batch_size=32),
        "qdrant": QdrantResource(),
        "document_store": LocalDocumentStore(),
    }


def materialize_logged(corpus, embedder=None, **config):
    """One run: document_embeddings' metadata (plain values), its value, the run's log messages."""
    run_config = {"ops": {"document_embeddings": {"config": config}}} if config else None
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            [raw_documents, document_embeddings],
            resources=resources(corpus, embedder),
            run_config=run_config,
            instance=instance,
        )
        assert result.success
        lines = [entry.user_message for entry in instance.all_logs(result.run_id)]
        value = result.output_for_node("document_embeddings")
    metadata = {
        m.asset_key.to_user_string(): {k: getattr(v, "value", v) for k, v in m.metadata.items()}
        for m in (
            e.event_specific_data.materialization for e in result.get_asset_materialization_events()
        )
    }
    return metadata["document_embeddings"], value, lines


def materialize(corpus, embedder=None, **config):
    metadata, value, _ = materialize_logged(corpus, embedder, **config)
    return metadata, value


def collection_points(home, collection):
    """Every point's id and payload, read with a fresh client after the run closed its own."""
    store = EdgeStore(home / "storage" / "index")
    try:
        return {
            r.id: (r.payload, r.dense, r.sparse)
            for r in store.scroll(collection, with_vectors=True, page=1000)
        }
    finally:
        store.close()


def chunk_count_by_doc(points):
    counts = {}
    for payload, *_ in points.values():
        counts[payload["source"]] = counts.get(payload["source"], 0) + 1
    return counts


def test_incremental_ingestion_lifecycle(dagster_home, tmp_path):
    corpus = tmp_path / "corpus"
    write_corpus(corpus)

    first, value, log = materialize_logged(corpus)
    points = collection_points(dagster_home, value["collection"])
    assert first["documents_new"] == 6 and first["documents_unchanged"] == 0
    assert first["model_loaded"] is True
    assert first["points"] == len(points) == first["chunks_embedded"]
    assert first["chunks_deduplicated"] == 1  # the copied legal page
    assert first["token_coverage"] == 1.0
    payload = next(iter(points.values()))[0]
    assert {"text", "doc_id", "source", "doc_hash", "chunk_index", "embedding_model"} <= set(
        payload
    )
    for payload, _, sparse in points.values():
        assert sparse.indices and len(sparse.indices) == len(sparse.values)  # BM25 beside
        assert payload["n_tokens"] <= 254

    # The run log says what the metadata says: the last progress line and the summary
    # line carry the same chunk count and rate (both read the sync's report).
    said = [
        (int(m[1]), float(m[2]))
        for line in log
        if (m := re.search(r"(\d+) chunks embedded(?:,| at) ([\d.]+) chunks/s", line))
    ]
    assert said[-1] == said[-2] == (first["chunks_embedded"], first["chunks_per_second"])
    assert isinstance(first["chunk_tokens"], str)  # a setting: text, not a plotted number

    second, _ = materialize(corpus)
    assert second["documents_unchanged"] == 6
    # Nothing was read or embedded: no rate or coverage to plot.
    assert "chunks_per_second" not in second and "token_coverage" not in second
    assert second["chunks_embedded"] == 0 and second["model_loaded"] is False
    assert second["index_opened"] is False  # the clean-sync summary matched
    assert second["points"] == first["points"]
    assert collection_points(dagster_home, value["collection"]).keys() == points.keys()

    # Edit one document's last section: only its changed chunks are embedded.
    edited = corpus / "doc2.md"
    edited.write_text(edited.read_text() + "\nA new closing sentence about restore points.\n")
    third, _ = materialize(corpus)
    after_edit = collection_points(dagster_home, value["collection"])
    assert third["documents_changed"] == 1 and third["documents_unchanged"] == 5
    assert 1 <= third["chunks_embedded"] < chunk_count_by_doc(points)[f"{corpus}/doc2.md"]
    assert third["points"] == len(after_edit)
    unchanged = {pid for pid, (p, *_) in points.items() if p["source"] != f"{corpus}/doc2.md"}
    assert unchanged <= after_edit.keys()  # other documents' points untouched
    doc2 = [p for p, *_ in after_edit.values() if p["source"] == f"{corpus}/doc2.md"]
    assert sorted(p["chunk_index"] for p in doc2) == list(range(len(doc2)))
    assert len({p["doc_hash"] for p in doc2}) == 1

    # Delete a document: its chunks disappear, nothing else changes.
    (corpus / "doc3.md").unlink()
    fourth, _ = materialize(corpus)
    after_delete = collection_points(dagster_home, value["collection"])
    assert fourth["documents_deleted"] == 1 and fourth["chunks_embedded"] == 0
    assert f"{corpus}/doc3.md" not in chunk_count_by_doc(after_delete)
    assert (
        len(after_delete) == len(after_edit) - chunk_count_by_doc(after_edit)[f"{corpus}/doc3.md"]
    )
    assert fourth["points"] == len(after_delete)


def test_changed_chunk_settings_build_a_new_versioned_collection(dagster_home, tmp_path):
    corpus = tmp_path / "corpus"
    write_corpus(corpus, n_docs=2)
    _, default = materialize(corpus)
    small, smaller = materialize(corpus, chunk_tokens=64, overlap_tokens=8)
    assert smaller["collection"] != default["collection"]
    assert small["documents_new"] == 4
    assert smaller["points"] > default["points"]
    assert collection_points(dagster_home, default["collection"])  # the old one is untouched


def test_a_collection_never_mixes_dtypes_and_auto_is_decided_once(
    dagster_home, tmp_path, monkeypatch
):
    corpus = tmp_path / "corpus"
    write_corpus(corpus, n_docs=1)
    _, fp32 = materialize(corpus)
    bf16_resource = SentenceTransformerResource(device="cpu", dtype="bf16", batch_size=32)
    _, bf16 = materialize(corpus, embedder=bf16_resource)
    assert bf16["collection"] != fp32["collection"]
    assert (fp32["dtype"], bf16["dtype"], bf16["device"]) == ("fp32", "bf16", "cpu")
    assert fp32["model_revision"] == bf16["model_revision"] == model_revision(PACKAGED_MODEL)
    for value in (fp32, bf16):
        points = collection_points(dagster_home, value["collection"]).values()
        assert {payload["embedding_dtype"] for payload, *_ in points} == {value["dtype"]}

    # dtype "auto": the first run decides by a probe, and lands in that dtype's collection.
    monkeypatch.setattr(precision_module, "_DECISIONS", {})
    auto = SentenceTransformerResource(device="cpu", dtype="auto", batch_size=32)
    first, decided = materialize(corpus, embedder=auto)
    assert first["dtype"].startswith(f"{decided['dtype']} (probe: bf16")
    assert decided["collection"] == {"fp32": fp32, "bf16": bf16}[decided["dtype"]]["collection"]
    assert first["documents_unchanged"] == 3
    # A later process knows the decision: the unchanged rerun loads and opens nothing.
    monkeypatch.setattr(precision_module, "_DECISIONS", {})
    again, same = materialize(corpus, embedder=auto)
    assert same["collection"] == decided["collection"]
    assert again["model_loaded"] is False and again["index_opened"] is False
    assert "decided earlier on this machine" in again["dtype"]


def test_raw_documents_reports_bad_inputs_and_fails_on_missing_source(dagster_home, tmp_path):
    corpus = tmp_path / "corpus"
    write_corpus(corpus, n_docs=1)
    (corpus / "empty.md").write_text("")
    (corpus / "latin.txt").write_bytes("caf\xe9".encode("latin-1"))
    (corpus / "diagram.svg").write_text("<svg/>")
    result = dg.materialize([raw_documents], resources=resources(corpus))
    rows = result.output_for_node("raw_documents")
    assert [r["uri"].rsplit("/", 1)[-1] for r in rows] == [
        "doc0.md",
        "latin.txt",
        "legal-a.md",
        "legal-b.md",
    ]
    metadata = raw_metadata(result)
    [skipped] = metadata["skipped_inputs"].records
    assert metadata["skipped"] == 1 and skipped.data["input"].endswith("empty.md")
    assert metadata["encodings"] == {"utf-8": 3, "latin-1": 1}
    [entry] = metadata["not_ingested_entries"].records
    assert metadata["not_ingested"] == 1 and entry.data["input"].endswith("diagram.svg")

    missing = dg.materialize(
        [raw_documents], resources=resources(tmp_path / "does-not-exist"), raise_on_error=False
    )
    assert not missing.success
    failure = missing.get_step_failure_events()[0].event_specific_data.error
    assert "does-not-exist" in failure.message and "does not exist" in failure.message


def raw_metadata(result):
    event = result.get_asset_materialization_events()[0]
    return {
        k: getattr(v, "value", v)
        for k, v in event.event_specific_data.materialization.metadata.items()
    }


def test_no_readable_document_fails_at_once_and_keeps_the_reason(dagster_home, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "empty.md").write_text("")
    assert raw_documents.op.retry_policy is not None  # the project's, declared on the asset
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [raw_documents], resources=resources(corpus), instance=instance, raise_on_error=False
        )
        retried = instance.all_logs(result.run_id, of_type=dg.DagsterEventType.STEP_UP_FOR_RETRY)
    assert not result.success and retried == []
    failure = result.get_step_failure_events()[0].step_failure_data.user_failure_data
    assert "no readable document" in failure.description
    assert "empty.md: empty file" in failure.description


def test_unchanged_rerun_reuses_extractions_and_a_changed_file_is_parsed_again(
    dagster_home, tmp_path
):
    corpus = tmp_path / "corpus"
    write_corpus(corpus)
    first = raw_metadata(dg.materialize([raw_documents], resources=resources(corpus)))
    assert (first["texts_written"], first["extractions_reused"]) == (5, 0)  # legal-a == legal-b
    second_result = dg.materialize([raw_documents], resources=resources(corpus))
    second = raw_metadata(second_result)
    assert (second["texts_written"], second["extractions_reused"]) == (0, 6)
    (corpus / "doc1.md").write_text("# Document 1\n\nRewritten.")
    third_result = dg.materialize([raw_documents], resources=resources(corpus))
    third = raw_metadata(third_result)
    assert (third["texts_written"], third["extractions_reused"], third["texts_pruned"]) == (1, 5, 1)
    assert second_result.output_for_node("raw_documents") != third_result.output_for_node(
        "raw_documents"
    )


def test_a_run_over_other_sources_prunes_nothing_another_run_needs(dagster_home, tmp_path):
    from genai_assets.resources.document_store import LocalDocumentStore

    first, second = tmp_path / "first", tmp_path / "second"
    write_corpus(first, n_docs=2)
    (second / "sub").mkdir(parents=True)
    (second / "sub" / "other.md").write_text("# Other\n\nA different corpus.")
    rows_a = dg.materialize([raw_documents], resources=resources(first)).output_for_node(
        "raw_documents"
    )
    dg.materialize([raw_documents], resources=resources(second))
    store = LocalDocumentStore().open()
    # The first run's document_embeddings can still read every text it was given.
    assert all(store.has(row["content_hash"]) for row in rows_a)


def test_dimension_mismatch_is_a_clear_error(dagster_home, tmp_path):
    from genai_assets.rag.index import DimensionMismatchError, QdrantIndex
    from genai_assets.rag.server_store import ServerStore

    for store in (
        EdgeStore(tmp_path / "edge"),
        ServerStore(QdrantClient(location=":memory:"), "server stand-in (local mode)"),
    ):
        index = QdrantIndex(store, "c")
        assert index.ensure(384) is True
        assert index.ensure(384) is False
        with pytest.raises(DimensionMismatchError, match="384-dimensional"):
            index.ensure(768)
        with pytest.raises(DimensionMismatchError, match="sparse model"):
            QdrantIndex(store, "c", sparse=False).ensure(384)
        store.close()


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    import dagster as dg
    from genai_assets.rag import index as index_module
    sys.path.insert(0, {test_dir!r})
    from test_ingestion_assets import materialize

    upserts = 0
    real_upsert = index_module.QdrantIndex.upsert

    def upsert_then_die(self, *args, **kwargs):
        # Fault injection: the process is killed (SIGKILL, no cleanup) after the second
        # batch of points reached the index, in the middle of the sync.
        global upserts
        real_upsert(self, *args, **kwargs)
        upserts += 1
        if upserts == 2:
            os.kill(os.getpid(), signal.SIGKILL)

    index_module.QdrantIndex.upsert = upsert_then_die
    from pathlib import Path
    materialize(Path({corpus!r}), batch_chunks=4)
    """
)


def test_run_killed_mid_upsert_is_repaired_to_the_exact_collection(
    dagster_home, tmp_path, monkeypatch
):
    corpus = tmp_path / "corpus"
    write_corpus(corpus)
    originals = {path: path.read_text() for path in corpus.glob("doc*.md")}
    # Reference: a clean run of the corpus in another home.
    reference_home = tmp_path / "reference_home"
    reference_home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(reference_home))
    _, reference = materialize(corpus, batch_chunks=4)
    expected = collection_points(reference_home, reference["collection"])
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))

    # Ingest, then edit every document so the killed run has old points to replace and
    # several batches of new ones to write.
    materialize(corpus, batch_chunks=4)
    for path, text in originals.items():
        path.write_text(text.replace("keeps encrypted", "keeps sealed"))
    script = KILLER.format(test_dir=os.path.dirname(__file__), corpus=str(corpus))
    killed = subprocess.run([sys.executable, "-c", script], env=dict(os.environ), timeout=300)
    assert killed.returncode == -signal.SIGKILL
    partial = collection_points(dagster_home, reference["collection"])
    assert partial.keys() - expected.keys()  # new points of the edit were written
    assert expected.keys() & partial.keys()  # and old ones not yet deleted

    # Revert the edit: the documents are again exactly what the last clean run saw, so
    # only the index itself can tell that the killed run left it half changed.
    for path, text in originals.items():
        path.write_text(text)
    repaired, value = materialize(corpus, batch_chunks=4)
    assert repaired["index_opened"] is True
    actual = collection_points(dagster_home, value["collection"])
    assert actual.keys() == expected.keys()
    for pid, (payload, vector, sparse) in expected.items():
        assert actual[pid][0] == payload
        assert actual[pid][1] == pytest.approx(vector, abs=1e-6)
        assert actual[pid][2] == sparse
    assert repaired["points"] == len(expected)


def test_index_changed_behind_the_summary_is_read_again_and_repaired(dagster_home, tmp_path):
    corpus = tmp_path / "corpus"
    write_corpus(corpus)
    _, value = materialize(corpus)
    expected = collection_points(dagster_home, value["collection"])
    # Something else deletes a point of doc1 after the clean sync that wrote the summary.
    lost = next(pid for pid, (p, *_) in expected.items() if p["source"] == f"{corpus}/doc1.md")
    store = EdgeStore(dagster_home / "storage" / "index")
    store.delete(value["collection"], [lost])
    store.close()

    # An edit elsewhere: the summary alone would miss doc1's lost point.
    edited = corpus / "doc2.md"
    edited.write_text(edited.read_text() + "\nA new closing sentence about restore points.\n")
    metadata, _ = materialize(corpus)
    actual = collection_points(dagster_home, value["collection"])
    assert metadata["documents_changed"] == 2  # doc2 edited, doc1 incomplete
    assert lost in actual
    assert metadata["points"] == len(actual)
    others = {pid: point for pid, point in expected.items() if point[0]["source"] != str(edited)}
    assert others.keys() <= actual.keys()  # every other document whole again, doc1 included


def test_embedded_index_opens_on_first_use(tmp_path):
    import numpy as np

    from genai_assets.rag.index import QdrantIndex

    resource = QdrantResource(location=str(tmp_path / "index"))
    with resource.open_on_first_use() as store:
        index = QdrantIndex(store, "c")
        assert not (tmp_path / "index").exists()  # nothing opened yet
        index.upsert(["5b0c3a52-9f1e-4d0e-8a39-2f3c1d7e6b11"], np.ones((1, 4), np.float32), [{}])
    with resource.open() as reopened:  # closed above: the shard is free, the write kept
        assert reopened.count("c") == 1
