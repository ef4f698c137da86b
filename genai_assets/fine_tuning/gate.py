"""The promotion gate of a fine-tuned model: thresholds, verdict and margins (no dagster import).

The RAG domain has its own gate (``genai_assets.rag.gate``) on retrieval
metrics; this one judges a candidate model against the champion on the fixed
evaluation set.
"""

import math
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class ModelGateThresholds:
    """What a candidate model must reach to be promoted."""

    max_perplexity: float | None = None
    min_rouge_l: float = 0.0
    min_bleu: float = 0.0
    min_relative_improvement: float = 0.0


@dataclass(frozen=True)
class ModelGateDecision:
    """Whether the candidate may be promoted, with a reason per rule.

    ``margins``: per numeric rule, how far the candidate is past its threshold
    (positive: passed with room to spare, negative: short by that much), in the
    metric's own unit; None where the candidate's perplexity is not finite.
    """

    passed: bool
    reasons: list[str]
    margins: dict[str, float | None] = field(default_factory=dict)

    def failures(self) -> list[str]:
        """The reasons of the rules that failed."""
        return [reason for reason in self.reasons if reason.startswith("FAILED")]

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form."""
        return asdict(self)


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _show(value: object) -> str:
    return f"{value:.3f}" if _finite(value) else "not finite"


def decide_promotion(
    candidate: dict[str, float],
    champion: dict[str, float],
    thresholds: ModelGateThresholds,
    same_weights: bool = False,
) -> ModelGateDecision:
    """Apply the gate to the metrics of the candidate and the champion on the fixed eval set.

    A perplexity of None means not finite (a diverged model). ``same_weights``:
    the candidate's files hash like the champion's (nothing changed, so training
    reproduced or reused the model being served): there is nothing to promote.

    Rules: the candidate's perplexity is finite and at most ``max_perplexity`` (when set:
    perplexity depends on the tokenizer, so there is no sensible default);
    its ROUGE-L and BLEU reach their minimums; and its perplexity beats the
    champion's by at least ``min_relative_improvement`` (0.05 = 5 % lower;
    0 = not worse). Every rule is reported, passed or not.
    """
    reasons: list[str] = []
    margins: dict[str, float | None] = {}
    passed = True

    def rule(ok: bool, text: str) -> None:
        nonlocal passed
        passed = passed and ok
        reasons.append(("ok: " if ok else "FAILED: ") + text)

    def perplexity_margin(limit: float) -> float | None:
        return float(limit - ppl) if _finite(ppl) else None

    rule(not same_weights, "candidate is not the model being served (its weights differ)")
    ppl = candidate["perplexity"]
    rule(_finite(ppl), f"candidate perplexity is finite ({_show(ppl)})")
    if thresholds.max_perplexity is not None:
        margins["max_perplexity"] = perplexity_margin(thresholds.max_perplexity)
        rule(
            _finite(ppl) and ppl <= thresholds.max_perplexity,
            f"candidate perplexity {_show(ppl)} <= max_perplexity {thresholds.max_perplexity}",
        )
    margins["min_rouge_l"] = float(candidate["rouge_l"] - thresholds.min_rouge_l)
    rule(
        candidate["rouge_l"] >= thresholds.min_rouge_l,
        f"candidate ROUGE-L {candidate['rouge_l']:.4f} >= min_rouge_l {thresholds.min_rouge_l}",
    )
    margins["min_bleu"] = float(candidate["bleu"] - thresholds.min_bleu)
    rule(
        candidate["bleu"] >= thresholds.min_bleu,
        f"candidate BLEU {candidate['bleu']:.3f} >= min_bleu {thresholds.min_bleu}",
    )
    champion_ppl = champion["perplexity"]
    if _finite(champion_ppl):
        required = champion_ppl * (1.0 - thresholds.min_relative_improvement)
        margins["min_relative_improvement"] = perplexity_margin(required)
        rule(
            _finite(ppl) and ppl <= required,
            f"candidate perplexity {_show(ppl)} <= {required:.3f} (champion {champion_ppl:.3f} "
            f"improved by min_relative_improvement {thresholds.min_relative_improvement:.0%})",
        )
    else:
        rule(_finite(ppl), "champion perplexity is not finite: any finite candidate beats it")
    return ModelGateDecision(passed=passed, reasons=reasons, margins=margins)
