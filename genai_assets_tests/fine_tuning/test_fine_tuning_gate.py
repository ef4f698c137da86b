"""The promotion gate of a fine-tuned model: rules, verdict and margins (pure logic)."""

import math

import pytest

from genai_assets.fine_tuning.gate import ModelGateThresholds, decide_promotion


def metrics(ppl, rouge=0.3, bleu=10.0):
    return {"perplexity": ppl, "rouge_l": rouge, "bleu": bleu}


@pytest.mark.parametrize(
    ("candidate", "champion", "thresholds", "passed", "failed_rule"),
    [
        (metrics(90), metrics(100), ModelGateThresholds(), True, None),
        (
            metrics(99.5),
            metrics(100),
            ModelGateThresholds(min_relative_improvement=0.01),
            False,
            "champion 100.000",
        ),
        (metrics(100), metrics(100), ModelGateThresholds(min_relative_improvement=0.0), True, None),
        (metrics(math.inf), metrics(100), ModelGateThresholds(), False, "finite"),
        (metrics(math.nan), metrics(100), ModelGateThresholds(), False, "finite"),
        (metrics(None), metrics(100), ModelGateThresholds(), False, "finite"),
        (metrics(50), metrics(None), ModelGateThresholds(), True, None),
        (
            metrics(50),
            metrics(100),
            ModelGateThresholds(max_perplexity=40),
            False,
            "max_perplexity",
        ),
        (
            metrics(50, rouge=0.1),
            metrics(100),
            ModelGateThresholds(min_rouge_l=0.2),
            False,
            "ROUGE-L",
        ),
        (metrics(50, bleu=1.0), metrics(100), ModelGateThresholds(min_bleu=5), False, "BLEU"),
        (metrics(50), metrics(math.inf), ModelGateThresholds(), True, None),
    ],
)
def test_gate(candidate, champion, thresholds, passed, failed_rule):
    decision = decide_promotion(candidate, champion, thresholds)
    assert decision.passed is passed
    assert len(decision.reasons) == 5 + (thresholds.max_perplexity is not None)
    failed = [r for r in decision.reasons if r.startswith("FAILED")]
    if failed_rule is None:
        assert failed == []
    else:
        assert any(failed_rule in r for r in failed), failed


def test_the_candidate_that_is_the_champion_is_refused():
    decision = decide_promotion(metrics(50), metrics(100), ModelGateThresholds(), same_weights=True)
    assert not decision.passed
    assert decision.reasons[0].startswith("FAILED: candidate is not the model being served")


def test_margins_are_numbers_signed_by_room_to_spare():
    thresholds = ModelGateThresholds(
        max_perplexity=60, min_rouge_l=0.2, min_bleu=12.0, min_relative_improvement=0.1
    )
    decision = decide_promotion(metrics(80, rouge=0.35, bleu=10.0), metrics(100), thresholds)
    assert decision.margins == pytest.approx(
        {
            "max_perplexity": -20.0,  # 80 is 20 over the limit of 60
            "min_rouge_l": 0.15,
            "min_bleu": -2.0,
            "min_relative_improvement": 10.0,  # 80 is 10 under the required 90
        }
    )
    assert all(isinstance(value, float) for value in decision.margins.values())
    assert [r.split(":")[0] for r in decision.failures()] == ["FAILED", "FAILED"]
    diverged = decide_promotion(metrics(math.inf), metrics(100), thresholds)
    assert diverged.margins["max_perplexity"] is None
    assert diverged.margins["min_relative_improvement"] is None
