"""The quality gate decision as a pure function."""

import pytest

from genai_assets.rag.evaluation.gate import RetrievalGateThresholds, decide
from genai_assets.rag.evaluation.scores import Coverage, score_coverage

THRESHOLDS = RetrievalGateThresholds(
    minimums={"recall_at_k": 0.75, "mrr": 0.5},
    compared=("recall_at_k", "mrr"),
    max_regression=0.125,
)


def test_passes_when_minimums_and_margin_hold():
    decision = decide(
        {"recall_at_k": 0.75, "mrr": 0.5}, {"recall_at_k": 0.875, "mrr": 0.5}, THRESHOLDS
    )
    assert decision.passed
    assert decision.failures == []
    assert [c["ok"] for c in decision.comparisons] == [True, True, True, True]
    assert decision.summary() == "passed all 4 rules"


def test_minimum_failure_names_metric_and_shortfall():
    decision = decide({"recall_at_k": 0.5, "mrr": 0.75}, None, THRESHOLDS)
    assert not decision.passed
    [failure] = decision.failures
    assert (failure.metric, failure.rule, failure.value, failure.required, failure.shortfall) == (
        "recall_at_k",
        "minimum",
        0.5,
        0.75,
        0.25,
    )
    assert decision.summary() == ("failed: recall_at_k = 0.500 is below the minimum 0.750 by 0.250")
    assert decision.margins() == {"recall_at_k": -0.25, "mrr": 0.25}


def test_regression_against_serving_fails_by_the_excess():
    decision = decide(
        {"recall_at_k": 0.75, "mrr": 0.5}, {"recall_at_k": 1.0, "mrr": 0.5}, THRESHOLDS
    )
    assert not decision.passed
    [failure] = decision.failures
    assert failure.rule == "regression"
    assert failure.required == 0.875
    assert failure.shortfall == 0.125
    assert decision.margins()["recall_at_k_vs_serving"] == -0.125
    assert "worse than the serving index allows (at least 0.875) by 0.125" in decision.summary()


def test_a_metric_with_a_minimum_that_was_not_run_fails():
    thresholds = RetrievalGateThresholds(minimums={"faithfulness": 0.8}, compared=())
    decision = decide({"faithfulness": None}, None, thresholds)
    assert not decision.passed
    assert decision.failures[0].rule == "not run"
    assert "faithfulness was not computed" in decision.summary()
    assert decision.margins() == {}  # no value, so no margin to the minimum


@pytest.mark.parametrize("serving", [None, {"recall_at_k": None, "mrr": None}, {}])
def test_nothing_to_compare_with_only_applies_minimums(serving):
    decision = decide({"recall_at_k": 0.8, "mrr": 0.6}, serving, THRESHOLDS)
    assert decision.passed
    assert len(decision.comparisons) == 2


def test_several_failures_are_all_reported():
    decision = decide(
        {"recall_at_k": 0.25, "mrr": 0.25}, {"recall_at_k": 1.0, "mrr": 1.0}, THRESHOLDS
    )
    assert [(f.metric, f.rule) for f in decision.failures] == [
        ("recall_at_k", "minimum"),
        ("mrr", "minimum"),
        ("recall_at_k", "regression"),
        ("mrr", "regression"),
    ]


def full(n: int = 40) -> Coverage:
    return Coverage(n, n)


def test_a_gated_metric_scored_for_too_few_questions_refuses_instead_of_passing():
    thresholds = RetrievalGateThresholds(
        minimums={"recall_at_k": 0.75, "faithfulness": 0.5}, compared=()
    )
    # One judged question out of 40, and a fine score on it: the survivors prove nothing.
    coverage = {"recall_at_k": full(), "faithfulness": Coverage(1, 40)}
    decision = decide({"recall_at_k": 0.9, "faithfulness": 1.0}, None, thresholds, coverage)
    assert not decision.passed
    [failure] = decision.failures
    assert (failure.metric, failure.rule, failure.value) == ("faithfulness", "coverage", 0.025)
    assert decision.summary() == (
        "failed: faithfulness was scored for only 1 of 40 questions (2%), below the required "
        "coverage of 90%; no verdict on the rest"
    )
    assert decision.margins()["coverage_faithfulness"] == pytest.approx(0.025 - 0.9)


@pytest.mark.parametrize(("scored", "passed"), [(36, True), (35, False)])
def test_coverage_at_the_configured_share_passes(scored, passed):
    thresholds = RetrievalGateThresholds(
        minimums={"faithfulness": 0.5}, compared=(), min_coverage=0.9
    )
    coverage = {"faithfulness": Coverage(scored, 40)}
    assert decide({"faithfulness": 0.8}, None, thresholds, coverage).passed is passed


def test_coverage_counts_for_compared_metrics_and_not_for_ungated_ones():
    thresholds = RetrievalGateThresholds(minimums={}, compared=("mrr",), min_coverage=0.9)
    coverage = {"mrr": Coverage(20, 40), "rouge_l": Coverage(0, 40)}
    decision = decide({"mrr": 0.8}, {"mrr": 0.8}, thresholds, coverage)
    assert [(f.metric, f.rule) for f in decision.failures] == [("mrr", "coverage")]


def test_score_coverage_counts_scored_questions_of_those_a_metric_applies_to():
    rows = [
        {"faithfulness": 0.5, "rouge_l": 0.4, "unscored": {}},
        {"faithfulness": None, "rouge_l": None, "unscored": {"faithfulness": "judge failed"}},
        {"faithfulness": float("nan"), "rouge_l": None, "unscored": {"faithfulness": "no score"}},
    ]
    coverage = score_coverage(rows, ["faithfulness", "rouge_l"])
    assert coverage == {"faithfulness": Coverage(1, 3), "rouge_l": Coverage(1, 1)}
    assert coverage["faithfulness"].describe() == "1 of 3 questions (33%)"
