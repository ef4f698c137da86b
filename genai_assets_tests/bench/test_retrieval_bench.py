"""The retrieval benchmark's data and measuring code: questions, scores, corpus, index."""

import argparse
import json
import math

import numpy as np
import pytest

from bench.corpus import Corpus, debian_doc_sources
from bench.retrieval_benchmark import (
    QUESTIONS,
    Chunks,
    _weights,
    build_index,
    corpus_with_answers,
    score_question,
    tuning_ids,
)
from genai_assets.rag.edge_store import EdgeStore
from genai_assets.rag.evaluation.golden_set import GoldenQuestion, load_golden_set
from genai_assets.rag.search import search


def question(*pages):
    return GoldenQuestion("q", "How?", None, tuple(pages), ())


def test_the_questions_load_cleanly_and_are_enough():
    golden = load_golden_set(QUESTIONS)
    assert golden.problems == []
    assert len(golden.questions) >= 150
    assert len({q.question.lower() for q in golden.questions}) == len(golden.questions)


def test_every_answer_page_exists_and_holds_the_evidence():
    sources = debian_doc_sources()
    if not sources:
        pytest.skip("python3-doc is not installed (apt-get install python3-doc)")
    root = next(path for path in sources[0].parents if path.name == "_sources")
    for line in QUESTIONS.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        for page in record["relevant_documents"]:
            assert (root / page).is_file(), f"{record['id']}: no page {page}"
        first = " ".join((root / record["relevant_documents"][0]).read_text().split())
        assert record["evidence"].lower() in first.lower(), record["id"]


def test_scores_count_each_answer_page_once():
    # Ranks: 1 other, 2 and 3 the first answer page, 6 the second (outside the top 5).
    sources = ["x.rst", "a.rst", "a.rst", "y.rst", "z.rst", "b.rst"]
    row = score_question(question("a.rst", "b.rst"), sources)
    assert row["hit_at_5"] == 1.0
    assert row["recall_at_5"] == 0.5
    assert row["mrr_at_10"] == 0.5
    ideal = 1 + 1 / math.log2(3)
    assert row["ndcg_at_10"] == pytest.approx((1 / math.log2(3) + 1 / math.log2(7)) / ideal)
    missed = score_question(question("c.rst"), sources)
    assert (missed["hit_at_5"], missed["mrr_at_10"], missed["ndcg_at_10"]) == (0.0, 0.0, 0.0)


def test_the_corpus_gains_the_answer_pages_it_lacks(tmp_path):
    for name in ("a.rst.txt", "b.rst.txt", "c.rst.txt"):
        (tmp_path / name).write_text(name)
    corpus = Corpus(tmp_path, (tmp_path / "a.rst.txt",), "one file")
    extended = corpus_with_answers(corpus, [question("c.rst.txt"), question("a.rst.txt")])
    assert extended.relative_files == ["a.rst.txt", "c.rst.txt"]
    with pytest.raises(FileNotFoundError, match="missing.rst.txt"):
        corpus_with_answers(corpus, [question("missing.rst.txt")])


def test_ours_are_asked_through_the_projects_store_and_search(tmp_path):
    # A real EdgeStore written by QdrantIndex and read through search(), as readers do;
    # 3-d vectors stand in for the model's (no model needed).
    vectors = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], dtype=np.float32)
    chunks = Chunks(
        texts=["sorting lists with a key function", "compressing files", "parsing arguments"],
        sources=["sort", "gzip", "argparse"],
        contexts=["", "gzip archives\n\n", "command line\n\n"],
    )
    build_index(tmp_path, "bench", chunks, vectors)
    store = EdgeStore(tmp_path)
    try:

        def sources(mode, text, vector=(0.1, 0.9, 0.0)):
            hits = search(store, "bench", [text], lambda _: [list(vector)], 3, mode)[0]
            return [hit.payload["source"] for hit in hits]

        assert sources("dense", "anything")[0] == "gzip"
        # BM25 reads the contextual prefix too: "command line" is only in argparse's.
        assert sources("sparse", "command line") == ["argparse"]
        assert set(sources("hybrid", "command line")[:2]) == {"gzip", "argparse"}
    finally:
        store.close()


def test_the_tuning_half_is_the_even_lines(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text("\n".join(json.dumps({"id": f"q{n}"}) for n in range(1, 6)) + "\nnot json\n")
    assert tuning_ids(path) == {"q2", "q4"}


def test_weights_parse_as_dense_to_sparse():
    assert _weights("1.5:1") == (1.5, 1.0)
    assert _weights("1:1") is None  # equal weights are the engine's default
    for bad in ("2", "a:b", "0:1"):
        with pytest.raises(argparse.ArgumentTypeError, match=repr(bad)):
            _weights(bad)
