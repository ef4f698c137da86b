"""The retrieval metrics, relevance rules and golden-set loading, on hand-made cases."""

import json
import math

import pytest

from genai_assets import settings
from genai_assets.rag.evaluation.golden_set import GoldenQuestion, GoldenSetError, load_golden_set
from genai_assets.rag.evaluation.retrieval_metrics import (
    RetrievedChunk,
    comes_from,
    contains_passage,
    hit_rate_at_k,
    ndcg_at_k,
    recall_at_k,
    reciprocal_rank,
    retrieval_scores,
)
from genai_assets.rag.evaluation.scores import mean_scores, worst_questions

A, B, C = frozenset({"a"}), frozenset({"b"}), frozenset({"c"})
NONE = frozenset()


@pytest.mark.parametrize(
    ("relevant", "k", "hit", "rr"),
    [
        ([True, False, False], 3, 1.0, 1.0),
        ([False, True, False, True], 4, 1.0, 0.5),
        ([False, False, True], 3, 1.0, 1 / 3),
        ([False, False, True], 2, 0.0, 0.0),
        ([False, False, False], 3, 0.0, 0.0),
        ([], 5, 0.0, 0.0),
    ],
)
def test_hit_rate_and_reciprocal_rank(relevant, k, hit, rr):
    assert hit_rate_at_k(relevant, k) == hit
    assert reciprocal_rank(relevant, k) == rr


@pytest.mark.parametrize(
    ("found", "n_targets", "k", "expected"),
    [
        ([A, NONE, B, A], 3, 4, 2 / 3),
        ([A, NONE, B, A], 3, 2, 1 / 3),
        ([A, A, A], 2, 3, 1 / 2),
        ([NONE, NONE], 1, 2, 0.0),
        ([A | B], 2, 1, 1.0),
    ],
)
def test_recall_at_k(found, n_targets, k, expected):
    assert recall_at_k(found, n_targets, k) == expected


@pytest.mark.parametrize(
    ("found", "n_targets", "k", "expected"),
    [
        # both targets at ranks 1 and 2: the ideal ranking
        ([A, B, NONE], 2, 3, 1.0),
        # targets at ranks 2 and 4: (1/log2(3) + 1/log2(5)) / (1 + 1/log2(3))
        ([NONE, A, A, B], 2, 4, 0.6509209298071326),
        # a second chunk of a found document gains nothing: 1 / (1 + 1/log2(3))
        ([A, A], 2, 2, 0.6131471927654584),
        # more targets than k: the ideal has k gains
        ([A], 3, 1, 1.0),
        # one target at rank 3 of 3: (1/log2(4)) / 1
        ([NONE, NONE, C], 1, 3, 0.5),
        ([NONE, NONE], 1, 2, 0.0),
    ],
)
def test_ndcg_at_k(found, n_targets, k, expected):
    assert ndcg_at_k(found, n_targets, k) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_ndcg_hand_computed_matches_definition():
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    idcg = 1 + 1 / math.log2(3)
    assert ndcg_at_k([NONE, A, A, B], 2, 4) == pytest.approx(dcg / idcg, rel=1e-15)


@pytest.mark.parametrize("metric", [recall_at_k, ndcg_at_k])
def test_metrics_need_a_target(metric):
    with pytest.raises(ValueError, match="at least one target"):
        metric([A], 0, 1)


@pytest.mark.parametrize(
    ("rule", "found_in", "target", "expected"),
    [
        (comes_from, "/data/corpus/guides/restore.md", "guides/restore.md", True),
        (comes_from, "s3://bucket/docs/guides/restore.md", "guides/restore.md", True),
        (comes_from, "guides/restore.md", "guides/restore.md", True),
        (comes_from, "C:\\corpus\\guides\\restore.md", "guides/restore.md", True),
        (comes_from, "/data/corpus/myguides/restore.md", "guides/restore.md", False),
        (comes_from, "/data/corpus/guides/restore.md.bak", "guides/restore.md", False),
        (contains_passage, "The default\n  is 8443.", "The default is 8443.", True),
        (contains_passage, "x The default is 8443. y", "  The default\tis 8443.\n", True),
        (contains_passage, "The default is 8443.", "the default is 8443.", False),
        (contains_passage, "The default is 8080.", "The default is 8443.", False),
    ],
)
def test_relevance_rules(rule, found_in, target, expected):
    """comes_from(source, document) and contains_passage(text, passage)."""
    assert rule(found_in, target) is expected


def question(**kwargs) -> GoldenQuestion:
    defaults = {
        "id": "q1",
        "question": "Which port?",
        "reference_answer": None,
        "relevant_documents": (),
        "relevant_passages": (),
    }
    return GoldenQuestion(**{**defaults, **kwargs})


def chunk(source: str, text: str = "unrelated") -> RetrievedChunk:
    return RetrievedChunk(source=f"/corpus/{source}", text=text, score=0.5)


def test_retrieval_scores_by_documents():
    q = question(
        relevant_documents=("reference/configuration.md", "about/faq.md"),
        relevant_passages=("The default is 8443.",),
    )
    ranked = [
        chunk("guides/quickstart.md"),
        # a passage match in a document not listed: relevant (hit, MRR), but finds no target
        chunk("guides/installation.md", "Note: the default is 8443. The default is 8443."),
        chunk("about/faq.md"),
        chunk("about/faq.md"),
        chunk("reference/configuration.md"),
    ]
    scores = retrieval_scores(q, ranked, k=5)
    assert scores["hit_rate_at_k"] == 1.0
    assert scores["mrr"] == 0.5
    assert scores["recall_at_k"] == 1.0
    assert scores["first_relevant_rank"] == 2
    assert scores["relevant_ranks"] == "2,3,4,5"
    expected_ndcg = (1 / math.log2(4) + 1 / math.log2(6)) / (1 + 1 / math.log2(3))
    assert scores["ndcg_at_k"] == pytest.approx(expected_ndcg, rel=1e-12)
    # cut at k = 3: only faq.md found
    scores = retrieval_scores(q, ranked, k=3)
    assert scores["recall_at_k"] == 0.5
    assert scores["ndcg_at_k"] == pytest.approx((1 / math.log2(4)) / (1 + 1 / math.log2(3)))


def test_retrieval_scores_by_passages_when_no_document_is_named():
    q = question(relevant_passages=("port 8443", "listen_port"))
    ranked = [
        chunk("a.md", "uses port\n8443"),
        chunk("b.md", "nothing"),
        chunk("c.md", "listen_port"),
    ]
    scores = retrieval_scores(q, ranked, k=3)
    assert scores["recall_at_k"] == 1.0
    assert scores["mrr"] == 1.0
    assert scores["ndcg_at_k"] == pytest.approx((1 + 0.5) / (1 + 1 / math.log2(3)))


def test_retrieval_scores_nothing_relevant():
    q = question(relevant_documents=("guides/restore.md",))
    scores = retrieval_scores(q, [chunk("guides/agents.md")], k=5)
    assert scores == {
        "hit_rate_at_k": 0.0,
        "recall_at_k": 0.0,
        "mrr": 0.0,
        "ndcg_at_k": 0.0,
        "first_relevant_rank": None,
        "relevant_ranks": "",
    }


def write_lines(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def good(id_: str, **extra) -> str:
    return json.dumps(
        {"id": id_, "question": f"Question {id_}?", "relevant_documents": ["a.md"], **extra}
    )


def test_golden_set_bad_lines_are_reported_and_the_rest_kept(tmp_path):
    path = write_lines(
        tmp_path / "golden.jsonl",
        [
            good("q1", reference_answer="Yes."),
            "{not json",
            "",
            json.dumps({"id": "q3", "question": "No targets?"}),
            json.dumps(["a", "list"]),
            good("q1"),
            json.dumps({"id": "q7", "question": "", "relevant_documents": ["a.md"]}),
            json.dumps({"id": "q8", "question": "Bad docs?", "relevant_documents": "a.md"}),
            json.dumps({"id": "q9", "question": "Passages only?", "relevant_passages": ["x y"]}),
        ],
    )
    golden = load_golden_set(path)
    assert [q.id for q in golden.questions] == ["q1", "q9"]
    assert golden.questions[0].reference_answer == "Yes."
    assert golden.questions[1].targets == ("x y",)
    problems = {p.line: p.reason for p in golden.problems}
    assert sorted(problems) == [2, 4, 5, 6, 7, 8]
    assert "not valid JSON" in problems[2]
    assert "neither" in problems[4]
    assert "JSON object" in problems[5]
    assert "duplicate id 'q1' (first on line 1)" in problems[6]
    assert "'question'" in problems[7]
    assert "'relevant_documents' must be a list" in problems[8]


def test_golden_set_missing_or_empty_is_an_error(tmp_path):
    with pytest.raises(GoldenSetError, match="does not exist"):
        load_golden_set(tmp_path / "missing.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(GoldenSetError, match="no usable question.*empty"):
        load_golden_set(tmp_path / "empty.jsonl")
    write_lines(tmp_path / "bad.jsonl", ["{", "[]"])
    with pytest.raises(GoldenSetError, match="2 bad lines: line 1: not valid JSON"):
        load_golden_set(tmp_path / "bad.jsonl")


def test_shipped_golden_set_loads_cleanly_and_points_into_the_sample_corpus():
    golden = load_golden_set(settings.PACKAGE_DATA / "golden_set.jsonl")
    assert golden.problems == []
    assert len(golden.questions) >= 30
    for q in golden.questions:
        for document in q.relevant_documents:
            assert (settings.SAMPLE_CORPUS_DIR / document).is_file(), (q.id, document)


def test_mean_scores_skip_missing_and_nan():
    rows = [{"m": 1.0, "n": None}, {"m": 0.5, "n": float("nan")}, {"m": 0.0}]
    assert mean_scores(rows, ["m", "n"]) == {"m": 0.5, "n": None}


def test_worst_questions_orders_by_score_with_unscored_last():
    rows = [
        {"id": "good", "question": "Fine?", "recall_at_k": 1.0, "retrieved_sources": "/c/a/b.md"},
        {"id": "bad", "question": "A | B?", "recall_at_k": 0.0, "retrieved_sources": "/c/x/y.md"},
        {"id": "unrun", "question": "?", "recall_at_k": None, "retrieved_sources": ""},
    ]
    worst = worst_questions(rows, ["recall_at_k"], limit=2)
    assert worst == [
        {"id": "bad", "question": "A | B?", "recall_at_k": 0.0, "top_sources": "x/y.md"},
        {"id": "good", "question": "Fine?", "recall_at_k": 1.0, "top_sources": "a/b.md"},
    ]
