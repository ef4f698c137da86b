"""Checks of the fine-tuning assets: the promotion gate and the data contracts."""

from pathlib import Path

import dagster as dg

from genai_assets.defs.fine_tuning.shared import gate_metadata
from genai_assets.fine_tuning import dataset as ds
from genai_assets.fine_tuning import eval_set
from genai_assets.fine_tuning.gate import ModelGateThresholds, decide_promotion


@dg.asset_check(
    asset="eval_report",
    blocking=True,
    description="The promotion gate on the fixed evaluation set: the candidate is not the "
    "model already serving, meets the thresholds and beats the champion by the configured "
    "margin. A refusal is an expected outcome, reported as a warning with every rule's "
    "verdict: the run stays green and serving_config leaves the serving files untouched.",
)
def promotion_gate(eval_report: dict) -> dg.AssetCheckResult:
    """Re-apply the gate to the report's numbers and say why it passed or refused."""
    thresholds = ModelGateThresholds(**eval_report["gate_thresholds"])
    decision = decide_promotion(
        eval_report["candidate"],
        eval_report["champion"],
        thresholds,
        same_weights=eval_report["same_weights"],
    )
    failed = decision.failures()
    return dg.AssetCheckResult(
        passed=decision.passed,
        # WARN, not ERROR: a refused candidate is the gate doing its job, not a failed run.
        severity=dg.AssetCheckSeverity.WARN,
        description=("not promoted: " + "; ".join(failed))
        if failed
        else "candidate may be promoted",
        metadata={
            "reasons": dg.MetadataValue.md("\n".join(f"- {r}" for r in decision.reasons)),
            **gate_metadata(decision, thresholds),
            "champion_source": eval_report["champion_source"],
            "eval_set": f"{eval_report['eval_set']['name']} v{eval_report['eval_set']['version']}",
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


@dg.asset_check(
    asset="training_dataset",
    blocking=True,
    description="Data contract: no question or answer of the eval split, nor of the fixed "
    "evaluation set, appears in the training split (case and spacing ignored). Blocking: an "
    "evaluation on answers the model was trained on measures memorisation.",
)
def eval_split_disjoint(training_dataset: dict) -> dg.AssetCheckResult:
    """Compare the written train and eval files, and the fixed set, turn by turn."""
    folder = Path(training_dataset["path"])
    train = ds.read_split(folder, "train")
    held_out = ds.read_split(folder, "eval")
    fixed = eval_set.load_eval_set(training_dataset["eval_set"]["path"])
    leaked = ds.split_overlap(train, held_out)
    leaked_fixed = ds.split_overlap(train + held_out, fixed.records)
    problems = [f"eval split: {text!r}" for text in leaked[:5]]
    problems += [f"fixed set {fixed.label}: {text!r}" for text in leaked_fixed[:5]]
    return dg.AssetCheckResult(
        passed=not leaked and not leaked_fixed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"{len(leaked)} eval-split and {len(leaked_fixed)} fixed-set turns also in training: "
            + "; ".join(problems)
            if problems
            else f"no eval turn in training ({len(train)} train, {len(held_out)} eval records, "
            f"{len(fixed.records)} in {fixed.label})"
        ),
        metadata={
            "leaked_eval_split_turns": dg.MetadataValue.int(len(leaked)),
            "leaked_fixed_set_turns": dg.MetadataValue.int(len(leaked_fixed)),
            "eval_groups": dg.MetadataValue.int(len({r["group"] for r in held_out})),
            "train_groups": dg.MetadataValue.int(len({r["group"] for r in train})),
        },
    )
