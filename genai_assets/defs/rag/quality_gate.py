"""rag_quality_gate: the blocking check that decides whether a candidate index may go live.

The gate is a blocking asset check on rag_quality_metrics, so a candidate that
fails it stops the run before rag_serving_index: the alias, and so the index
readers use, stays as it was.
"""

import dagster as dg
from pydantic import Field

from genai_assets.defs.rag import quality_metrics
from genai_assets.defs.rag.metadata import table
from genai_assets.rag.evaluation.collection import ALL_METRICS
from genai_assets.rag.evaluation.gate import (
    DEFAULT_COMPARED,
    DEFAULT_MAX_REGRESSION,
    DEFAULT_MIN_COVERAGE,
    DEFAULT_MINIMUMS,
    RetrievalGateDecision,
    RetrievalGateThresholds,
    decide,
)
from genai_assets.rag.evaluation.scores import mean_scores, score_coverage

GATE_CHECK = dg.AssetCheckKey(quality_metrics.rag_quality_metrics.key, "rag_quality_gate")
RULE_COLUMNS = (
    ("metric", "string"),
    ("rule", "string"),
    ("candidate", "float"),
    ("required", "float"),
    ("margin", "float"),
    ("ok", "bool"),
)


def _rules_table(decision: RetrievalGateDecision) -> dg.TableMetadataValue:
    """Every rule the gate applied; candidate and margin are empty for a metric not computed."""
    return table(
        RULE_COLUMNS,
        (
            {
                **rule,
                "candidate": rule["value"],
                "margin": None if rule["value"] is None else rule["value"] - rule["required"],
            }
            for rule in decision.comparisons
        ),
    )


class QualityGateConfig(dg.Config):
    """Thresholds of the quality gate, on mean scores over the golden set."""

    min_hit_rate_at_k: float = Field(
        default=DEFAULT_MINIMUMS["hit_rate_at_k"],
        ge=0,
        le=1,
        description="Least share of questions with a relevant chunk in the top k.",
    )
    min_recall_at_k: float = Field(
        default=DEFAULT_MINIMUMS["recall_at_k"],
        ge=0,
        le=1,
        description="Least mean share of relevant documents found in the top k.",
    )
    min_mrr: float = Field(
        default=DEFAULT_MINIMUMS["mrr"],
        ge=0,
        le=1,
        description="Least mean reciprocal rank of the first relevant chunk.",
    )
    min_ndcg_at_k: float = Field(
        default=DEFAULT_MINIMUMS["ndcg_at_k"], ge=0, le=1, description="Least mean nDCG@k."
    )
    extra_minimums: dict[str, float] = Field(
        default_factory=dict,
        description="Minimums for other metrics, e.g. {'faithfulness': 0.8}; a metric with a "
        "minimum that was not computed fails the gate.",
    )
    max_regression: float = Field(
        default=DEFAULT_MAX_REGRESSION,
        ge=0,
        description="How much lower than the serving index a compared metric may be.",
    )
    compared_metrics: list[str] = Field(
        default_factory=lambda: list(DEFAULT_COMPARED),
        description="Metrics that must be no worse than the serving index's (within the margin).",
    )
    min_coverage: float = Field(
        default=DEFAULT_MIN_COVERAGE,
        ge=0,
        le=1,
        description="Least share of the questions a gated metric applies to that must have a "
        "score (LLM-judge failures and answers missing from the index leave questions "
        "unscored); below it the gate refuses instead of judging on the rest.",
    )

    def thresholds(self) -> RetrievalGateThresholds:
        """The pure thresholds object."""
        unknown = [
            m for m in [*self.extra_minimums, *self.compared_metrics] if m not in ALL_METRICS
        ]
        if unknown:
            raise ValueError(f"unknown metrics {unknown}; known: {', '.join(ALL_METRICS)}")
        minimums = {
            "hit_rate_at_k": self.min_hit_rate_at_k,
            "recall_at_k": self.min_recall_at_k,
            "mrr": self.min_mrr,
            "ndcg_at_k": self.min_ndcg_at_k,
            **self.extra_minimums,
        }
        return RetrievalGateThresholds(
            minimums, tuple(self.compared_metrics), self.max_regression, self.min_coverage
        )


@dg.asset_check(
    asset=quality_metrics.rag_quality_metrics,
    name="rag_quality_gate",
    blocking=True,
    description="The quality gate: the candidate's mean scores meet the minimums and are no "
    "worse than the serving index's by more than the margin. Blocking: when it fails, "
    "rag_serving_index does not run and the alias keeps pointing at the serving index.",
)
def rag_quality_gate(
    config: QualityGateConfig, rag_quality_metrics: list[dict]
) -> dg.AssetCheckResult:
    """Decide from the stored per-question results."""
    candidate_rows = [r for r in rag_quality_metrics if r["role"] == "candidate"]
    serving_rows = [r for r in rag_quality_metrics if r["role"] == "serving"]
    thresholds = config.thresholds()
    coverage = score_coverage(candidate_rows, ALL_METRICS)
    decision = decide(
        mean_scores(candidate_rows, ALL_METRICS),
        mean_scores(serving_rows, ALL_METRICS) if serving_rows else None,
        thresholds,
        coverage,
    )
    candidate = candidate_rows[0]["collection"] if candidate_rows else "?"
    gated = {*thresholds.minimums, *thresholds.compared}
    metadata: dict[str, object] = {
        "candidate": candidate,
        "serving": serving_rows[0]["collection"] if serving_rows else "none",
        "decision": decision.summary(),
        "rules": _rules_table(decision),
        "failed_rules": dg.MetadataValue.int(len(decision.failures)),
        "judge_failures": dg.MetadataValue.int(sum(1 for r in candidate_rows if r["llm_error"])),
        **{
            f"coverage_{metric}": dg.MetadataValue.float(round(counted.share, 6))
            for metric, counted in coverage.items()
            if metric in gated and counted.applicable
        },
    }
    # Positive: room above what the rule requires; negative: short of it.
    for rule, margin in decision.margins().items():
        metadata[f"margin_{rule}"] = dg.MetadataValue.float(round(margin, 6))
    if not decision.passed:
        metadata["not_promoted"] = (
            f"{candidate} is not promoted: {decision.summary()}; the alias is unchanged"
        )
    return dg.AssetCheckResult(
        passed=decision.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=decision.summary(),
        metadata=metadata,
    )
