"""DocumentSync on its own: real model, real chunker, real index on both engines.

The holes of issue 14 point 9: bounded re-label batches, drift the point count
cannot see, documents whose stored text is missing, and the prefetch thread
after an error. Fault injection wraps the real objects (named where it happens).
"""

import hashlib
import threading
import time

import pytest

from genai_assets.rag.chunking import Chunker
from genai_assets.rag.embedder import Embedder
from genai_assets.rag.index import QdrantIndex
from genai_assets.rag.model_files import PACKAGED_MODEL, load_tokenizer, model_revision
from genai_assets.rag.sync import (
    DocumentSync,
    IndexChangedError,
    IndexedState,
    PrecisionMismatchError,
    SourceDocument,
)
from genai_assets.rag.vector_store import IndexPoint
from genai_assets.rag.versioning import IngestSettings
from genai_assets_tests.rag.engines import ENGINES, open_engine

CHUNK_TOKENS = 48
SECTION = "Skyline Vault keeps encrypted snapshots of every protected volume. "


@pytest.fixture(scope="module")
def model():
    return Embedder(PACKAGED_MODEL, device="cpu", dtype="fp32", batch_size=32)


def settings(dtype: str = "fp32") -> IngestSettings:
    revision = model_revision(PACKAGED_MODEL)
    return IngestSettings(
        PACKAGED_MODEL, CHUNK_TOKENS, 8, model_revision=revision, device="cpu", dtype=dtype
    )


class TextStore:
    """Texts by content hash, as raw_documents' store holds them."""

    def __init__(self):
        self.texts: dict[str, str] = {}
        self.reads = 0

    def add(self, doc_id: str, text: str, content_hash: str | None = None) -> SourceDocument:
        content_hash = content_hash or hashlib.sha256(text.encode()).hexdigest()
        self.texts[content_hash] = text
        return SourceDocument(doc_id, f"/corpus/{doc_id}.md", content_hash, doc_id)

    def read(self, doc: SourceDocument) -> str:
        self.reads += 1
        if doc.content_hash not in self.texts:
            raise FileNotFoundError(f"no stored text for content hash {doc.content_hash}")
        return self.texts[doc.content_hash]


def corpus(store: TextStore, n_docs: int = 5) -> list[SourceDocument]:
    return [
        store.add(f"doc{i}", f"# Document {i}\n\n" + f"Part {i}. " + SECTION * (8 + i))
        for i in range(n_docs)
    ]


def make_sync(index, store, model, batch_chunks=4, load=None) -> DocumentSync:
    return DocumentSync(
        index,
        settings(),
        chunker_factory=lambda: Chunker(load_tokenizer(PACKAGED_MODEL), CHUNK_TOKENS, 8),
        embedder_factory=load or (lambda: model),
        read_text=store.read,
        batch_chunks=batch_chunks,
        report=lambda line: None,
    )


def points(index: QdrantIndex) -> dict[str, dict]:
    return {record.id: record.payload for record in index.store.scroll(index.collection)}


def indexed_state(index: QdrantIndex) -> IndexedState:
    """What a clean sync's summary would record (read back from the index)."""
    states = index.document_states()
    return IndexedState(states, sum(len(s.points) for s in states.values()))


@pytest.fixture(params=ENGINES)
def vector_store(request, tmp_path):
    """An open store of each engine (the server adapter on its local-mode stand-in)."""
    opened = open_engine(request.param, tmp_path)
    yield opened
    opened.close()


@pytest.fixture
def fresh_index(vector_store):
    """A function giving a new, empty collection of the store at each call."""
    names = iter(range(100))
    return lambda: QdrantIndex(vector_store, f"c{next(names)}")


def synced(model, fresh_index, n_docs: int = 5):
    """A new collection synced with a corpus of ``n_docs``: (text store, documents, index)."""
    store = TextStore()
    docs = corpus(store, n_docs)
    index = fresh_index()
    make_sync(index, store, model).run(docs)
    return store, docs, index


def test_documents_that_only_need_relabelling_go_in_bounded_batches(model, fresh_index):
    store = TextStore()
    docs = corpus(store)
    index = fresh_index()
    first = make_sync(index, store, model, batch_chunks=4).run(docs)
    total = len(points(index))
    assert first.chunks_embedded == total > 8

    # Every document gets a new hash but keeps its text (a crash repair looks the same):
    # every point needs a new label and none a new vector.
    relabelled = [
        store.add(d.doc_id, store.texts[d.content_hash], "new" + d.content_hash) for d in docs
    ]
    sizes: list[int] = []
    real_set_payloads = index.set_payloads

    def recording_set_payloads(updates):  # spy on the real method
        updates = list(updates)
        sizes.append(len(updates))
        real_set_payloads(updates)

    index.set_payloads = recording_set_payloads
    report = make_sync(index, store, model, batch_chunks=4).run(relabelled)
    assert report.chunks_embedded == 0
    assert sum(sizes) == total
    # Not one batch of the whole corpus: a batch closes once it holds 4 re-labels, after
    # the document that reached them.
    largest = max(p["chunk_count"] for p in points(index).values())
    assert len(sizes) > 1 and max(sizes) < 4 + largest
    assert {p["doc_hash"] for p in points(index).values()} == {d.content_hash for d in relabelled}


def test_drift_behind_an_unchanged_point_count_is_detected(model, fresh_index):
    store, docs, index = synced(model, fresh_index)
    expected = points(index)
    summary = indexed_state(index)

    # Something else deletes a point of doc1 and writes a foreign one: same count.
    lost = next(pid for pid, p in expected.items() if p["doc_id"] == "doc1")
    stray = "5b0c3a52-9f1e-4d0e-8a39-2f3c1d7e6b11"
    [vector] = [
        r.dense for r in index.store.scroll(index.collection, with_vectors=True) if r.id == lost
    ]
    index.store.delete(index.collection, [lost])
    index.store.upsert(index.collection, [IndexPoint(stray, vector, {"doc_id": "x"})])
    assert index.count() == len(expected)

    doc2 = store.add("doc2", store.texts[docs[2].content_hash] + " Restore.")
    edited = [*docs[:2], doc2, *docs[3:]]
    with pytest.raises(IndexChangedError, match="1 of the points it left are missing"):
        make_sync(index, store, model).run(edited, summary)
    assert lost not in points(index) and stray in points(index)  # nothing was written

    # Read from the index itself, the sync repairs it exactly.
    report = make_sync(index, store, model).run(edited)
    assert report.documents_changed == 2 and report.documents_deleted == 1
    reference = fresh_index()
    make_sync(reference, store, model).run(edited)
    assert points(index) == points(reference)


def test_a_document_whose_text_is_missing_keeps_no_outdated_points(model, fresh_index):
    store, docs, index = synced(model, fresh_index)
    before = points(index)

    # doc0 changed but its new text is not in the store: its old points are outdated.
    # doc1 is current but incomplete (one point lost) and its text is missing too: the
    # points it has are of its current version and stay.
    new_doc0 = SourceDocument("doc0", docs[0].uri, "hash-without-text", "doc0")
    doc1_points = sorted(pid for pid, p in before.items() if p["doc_id"] == "doc1")
    index.delete(doc1_points[:1])
    doc1_text = store.texts.pop(docs[1].content_hash)
    report = make_sync(index, store, model).run([new_doc0, *docs[1:]])

    after = points(index)
    assert not [p for p in after.values() if p["doc_id"] == "doc0"]
    assert sorted(pid for pid, p in after.items() if p["doc_id"] == "doc1") == doc1_points[1:]
    reasons = dict(report.skipped)
    assert "no stored text for content hash hash-without-text" in reasons[docs[0].uri]
    outdated = sum(p["doc_id"] == "doc0" for p in before.values())
    assert f"its {outdated} outdated points were removed" in reasons[docs[0].uri]
    assert "removed" not in reasons[docs[1].uri]
    others = {pid: p for pid, p in before.items() if p["doc_id"] not in ("doc0", "doc1")}
    assert others.items() <= after.items()

    # Once the texts are stored again, a rerun indexes both.
    store.texts[docs[1].content_hash] = doc1_text
    fixed = store.add("doc0", "# Document 0, rewritten\n\n" + SECTION * 9, "hash-without-text")
    rerun = make_sync(index, store, model).run([fixed, *docs[1:]])
    assert rerun.skipped == [] and rerun.documents_new + rerun.documents_changed == 2
    reference = fresh_index()
    make_sync(reference, store, model).run([fixed, *docs[1:]])
    assert points(index) == points(reference)


def test_a_store_that_cannot_be_reached_fails_the_sync_instead_of_skipping(model, fresh_index):
    store, docs, index = synced(model, fresh_index, n_docs=2)
    before = points(index)

    def unreachable(doc):  # fault injection: the store's connection fails
        raise ConnectionError("document store unreachable")

    sync = make_sync(index, store, model)
    sync.read_text = unreachable
    with pytest.raises(ConnectionError, match="unreachable"):
        sync.run([SourceDocument("doc0", docs[0].uri, "changed", "doc0"), docs[1]])
    assert points(index) == before


def test_after_an_embedding_error_the_prefetch_thread_stops_and_error_propagates(
    model, fresh_index
):
    store = TextStore()
    docs = corpus(store, n_docs=30)

    class FailingModel:  # fault injection around the real model: its first encode fails
        dimension, dtype, dtype_reason, device = model.dimension, model.dtype, "", model.device

        def encode(self, texts, token_ids=None):
            raise RuntimeError("CUDA out of memory (injected)")

    sync = make_sync(fresh_index(), store, model, batch_chunks=1, load=FailingModel)
    with pytest.raises(RuntimeError, match="injected"):
        sync.run(docs)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(
        t.name == "chunk-prefetch" for t in threading.enumerate()
    ):
        time.sleep(0.05)
    assert not [t for t in threading.enumerate() if t.name == "chunk-prefetch"]
    assert store.reads < len(docs)  # it stopped reading documents nobody would embed


def test_contextual_chunks_embed_the_title_and_headings_and_store_the_plain_text(
    model, fresh_index
):
    store = TextStore()
    text = "Restore\n=======\n\nIntro.\n\nSnapshots\n---------\n\n" + SECTION * 12
    doc = store.add("guide", text)
    doc = SourceDocument(doc.doc_id, doc.uri, doc.content_hash, "Vault guide")
    index = fresh_index()
    sync = DocumentSync(
        index,
        IngestSettings(
            PACKAGED_MODEL,
            CHUNK_TOKENS,
            8,
            model_revision=model_revision(PACKAGED_MODEL),
            device="cpu",
            dtype="fp32",
            contextual=True,
        ),
        chunker_factory=lambda: Chunker(
            load_tokenizer(PACKAGED_MODEL), CHUNK_TOKENS, 8, contextual=True
        ),
        embedder_factory=lambda: model,
        read_text=store.read,
        report=lambda line: None,
    )
    sync.run([doc])
    records = list(index.store.scroll(index.collection, with_vectors=True))
    deep = [r for r in records if r.payload["heading_path"][-1:] == ["Snapshots"]]
    assert deep and all(r.payload["context"].startswith("Vault guide > ") for r in deep)
    assert all("Vault guide" not in r.payload["text"] for r in records)  # stored text as is
    # The vector is the model's embedding of the prefix and the text, not of the text alone.
    sample = deep[0]
    [with_prefix, plain] = model.encode(
        [sample.payload["context"] + sample.payload["text"], sample.payload["text"]]
    )
    assert float(with_prefix @ sample.dense) > 0.9999 > float(plain @ sample.dense)


def test_a_model_running_at_another_dtype_is_refused_before_anything_is_written(model, fresh_index):
    store = TextStore()
    index = fresh_index()
    sync = DocumentSync(
        index,
        settings(dtype="bf16"),  # the collection's settings; the model runs at fp32
        chunker_factory=lambda: Chunker(load_tokenizer(PACKAGED_MODEL), CHUNK_TOKENS, 8),
        embedder_factory=lambda: model,
        read_text=store.read,
        report=lambda line: None,
    )
    with pytest.raises(PrecisionMismatchError, match="runs at fp32 on cpu, but the settings"):
        sync.run(corpus(store, n_docs=1))
    assert not index.exists()
