"""The promotion gate: a blocking check on eval_report that guards serving_config."""

import dagster as dg

from genai_assets.finetune import serving


@dg.asset_check(
    asset="eval_report",
    blocking=True,
    description="The promotion gate: the candidate meets the thresholds and beats the champion "
    "by the configured margin. Blocking: when it fails, serving_config is not materialized and "
    "the serving config stays as it was.",
)
def promotion_gate(eval_report: dict) -> dg.AssetCheckResult:
    """Re-apply the gate to the report's numbers and say why it passed or failed."""
    decision = serving.decide_promotion(
        eval_report["candidate"],
        eval_report["champion"],
        serving.GateThresholds(**eval_report["gate_thresholds"]),
    )
    failed = [reason for reason in decision.reasons if reason.startswith("FAILED")]
    return dg.AssetCheckResult(
        passed=decision.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description="; ".join(failed) if failed else "candidate may be promoted",
        metadata={
            "reasons": dg.MetadataValue.md("\n".join(f"- {r}" for r in decision.reasons)),
            "champion_source": eval_report["champion_source"],
        },
    )


@dg.asset_check(
    asset="training_dataset",
    description="Data contract: at most 20 % of the source lines are quarantined (a warning: "
    "the valid records are still usable, but the source needs a look).",
)
def quarantine_rate(training_dataset: dict) -> dg.AssetCheckResult:
    """Share of quarantined lines among all non-blank lines of the source."""
    total = training_dataset["n_train"] + training_dataset["n_eval"]
    total += training_dataset["n_quarantined"]
    rate = training_dataset["n_quarantined"] / total if total else 1.0
    return dg.AssetCheckResult(
        passed=rate <= 0.2,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{rate:.1%} of {total} lines quarantined",
        metadata={
            "quarantine_rate": dg.MetadataValue.float(rate),
            "reasons": dg.MetadataValue.json(training_dataset["quarantine_reasons"]),
        },
    )
