"""The retrieval benchmark's data and measuring code: questions, scores, corpus, index."""

import json
import math

import numpy as np
import pytest

from bench.corpus import Corpus, debian_doc_sources
from bench.retrieval_benchmark import (
    QUESTIONS,
    EdgeIndex,
    corpus_with_answers,
    score_question,
)
from genai_assets.rag.evaluation.golden_set import GoldenQuestion, load_golden_set


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


def test_edge_index_answers_dense_sparse_and_hybrid(tmp_path):
    # A real Qdrant Edge shard; 3-d vectors stand in for the model's (no model needed).
    vectors = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], dtype=np.float32)
    texts = [
        "sorting lists with a key function",
        "compressing files with gzip archives",
        "parsing command line arguments",
    ]
    index = EdgeIndex(tmp_path / "shard", vectors, texts, ["sort", "gzip", "argparse"])
    try:
        near_gzip = [0.1, 0.9, 0.0]
        assert index.search("dense", near_gzip, "anything", 3, 60, 10)[0] == "gzip"
        assert index.search("sparse", near_gzip, "command line arguments", 3, 60, 10) == [
            "argparse"
        ]
        hybrid = index.search("hybrid", near_gzip, "command line arguments", 3, 60, 10)
        assert set(hybrid[:2]) == {"gzip", "argparse"}
        with pytest.raises(ValueError, match="query mode"):
            index.search("fuzzy", near_gzip, "x", 3, 60, 10)
    finally:
        index.close()
