"""The evaluation stage: eval_report, the candidate against the champion on the fixed set."""

import json
from dataclasses import asdict
from pathlib import Path

import dagster as dg

from genai_assets.defs.fine_tuning.configs import EvalReportConfig
from genai_assets.defs.fine_tuning.shared import (
    fine_tuning_asset,
    gate_metadata,
    load_eval_set,
    scores_table,
    verify_weights,
)
from genai_assets.fine_tuning import dataset as ds
from genai_assets.fine_tuning import evaluation, paths, serving, weights
from genai_assets.fine_tuning.gate import ModelGateThresholds, decide_promotion
from genai_assets.fine_tuning.progress import library_logs_to
from genai_assets.resources.mlflow_tracking import MlflowTrackingResource

METRICS = ("perplexity", "rouge_l", "bleu")


def _champion(base_model: str) -> dict:
    """``serving.champion``; a served folder that is gone or altered fails the step."""
    try:
        return serving.champion(paths.serving_dir(), base_model)
    except FileNotFoundError as error:
        raise dg.Failure(str(error)) from error
    except weights.WeightsMismatch as error:
        raise dg.Failure(str(error), allow_retries=False) from error


def _previous_evaluation(context: dg.AssetExecutionContext, key: str) -> dict | None:
    """The last report's numbers and run id, when it evaluated exactly this (its ``key``)."""
    event = context.instance.get_latest_materialization_event(context.asset_key)
    if event is None or event.asset_materialization is None:
        return None
    metadata = event.asset_materialization.metadata
    if "evaluation_key" not in metadata or metadata["evaluation_key"].value != key:
        return None
    report_json = Path(str(metadata["report_path"].value)).with_suffix(".json")
    if not report_json.exists():
        return None
    report = json.loads(report_json.read_text())
    return {**report, "run_id": report.get("evaluated_in_run", event.run_id)}


@fine_tuning_asset(
    stage="evaluation",
    code_version="2",
    kinds={"pytorch"},
)
def eval_report(
    context: dg.AssetExecutionContext,
    config: EvalReportConfig,
    mlflow: MlflowTrackingResource,
    base_model: dict,
    training_dataset: dict,
    fine_tuned_model: dict,
) -> dg.Output[dict]:
    """Evaluate the models on the fixed eval set and the held-out split; write the report.

    Perplexity, ROUGE-L and BLEU of the candidate, the base model and the champion (the
    model the serving config names) on the fixed, versioned evaluation set, which new
    training data cannot change, with the gate verdict; the new data's held-out split is
    reported beside it. Records the sha256 of the candidate weights it evaluated.
    """
    recorded_set = training_dataset["eval_set"]
    fixed = load_eval_set(recorded_set["path"])
    if fixed.sha256 != recorded_set["sha256"]:
        raise dg.Failure(
            f"the fixed evaluation set {fixed.path} changed since training_dataset read it "
            f"({recorded_set['sha256'][:12]} -> {fixed.sha256[:12]}); run the whole job again",
            allow_retries=False,
        )
    held_out = ds.read_split(Path(training_dataset["path"]), "eval")
    settings_ = evaluation.EvalSettings(
        max_new_tokens=config.max_new_tokens,
        max_generation_examples=config.max_generation_examples,
    )
    # The weights evaluated must be the weights training wrote.
    candidate_sha = verify_weights(
        fine_tuned_model["path"], fine_tuned_model["weights_sha256"], "the training manifest"
    )
    champion = _champion(base_model["name_or_path"])
    same_weights = candidate_sha == champion["weights_sha256"]
    models = {
        "candidate": fine_tuned_model["path"],
        "base": base_model["name_or_path"],
        "champion": None if champion["version"] is None else champion["path"],
        "champion_is_candidate": same_weights,
    }
    key = evaluation.evaluation_key(
        candidate=candidate_sha,
        champion=champion["weights_sha256"] or f"{champion['path']}@{champion['version']}",
        base_model=base_model["name_or_path"],
        eval_set=fixed.sha256,
        held_out=training_dataset["content_hash"],
        settings=asdict(settings_),
    )
    reused = _previous_evaluation(context, key)
    if reused is not None:  # the same models on the same records: the numbers cannot differ
        results = {name: reused[name] for name in ("candidate", "base", "champion")}
        held_out_results = reused["held_out"]
        context.log.info(
            f"same models and records as run {reused['run_id'][:8]}: not evaluated again"
        )
    else:
        with library_logs_to(context.log):  # transformers' warnings as run log lines
            results = evaluation.score_models(fixed.records, settings_, with_base=True, **models)
            held_out_results = evaluation.score_models(
                held_out, settings_, with_base=False, **models
            )
    thresholds = ModelGateThresholds(
        max_perplexity=config.max_perplexity,
        min_rouge_l=config.min_rouge_l,
        min_bleu=config.min_bleu,
        min_relative_improvement=config.min_relative_improvement,
    )
    gate = decide_promotion(
        results["candidate"], results["champion"], thresholds, same_weights=same_weights
    )
    markdown = evaluation.render_report(
        results, gate.to_dict(), title=f"fixed evaluation set {fixed.label}"
    )
    markdown += "\n" + evaluation.render_report(
        held_out_results,
        None,
        title="held-out split of the new training data (not gated)",
        heading="##",
    )
    markdown += f"\nChampion: {champion['source']}. Base model: {base_model['label']}.\n"
    report_dir = paths.reports_dir() / f"{context.run.run_id[:8]}"
    report_dir.mkdir(parents=True, exist_ok=True)
    value = {
        **results,
        "held_out": held_out_results,
        "eval_set": fixed.identity(),
        "champion_source": champion["source"],
        "champion_version": champion["version"],
        "champion_weights_sha256": champion["weights_sha256"],
        "candidate_weights_sha256": candidate_sha,
        "same_weights": same_weights,
        "candidate_model": fine_tuned_model,
        "gate_thresholds": asdict(thresholds),
        "gate": gate.to_dict(),
        "n_eval_records": len(fixed.records),
        "n_held_out_records": len(held_out),
        "report_path": str(report_dir / "eval_report.md"),
        "evaluation_key": key,
        "evaluated_in_run": reused["run_id"] if reused else context.run.run_id,
    }
    serving.atomic_write_text(report_dir / "eval_report.md", markdown)
    serving.atomic_write_text(
        report_dir / "eval_report.json", json.dumps(value, indent=2, default=str)
    )
    metadata: dict[str, object] = {
        "report": dg.MetadataValue.md(markdown),
        "scores": scores_table(results),
        "report_path": dg.MetadataValue.path(value["report_path"]),
        "champion_source": champion["source"],
        **gate_metadata(gate, thresholds),
        "eval_set": fixed.label,
        # An identity, not a measurement: text, so the UI does not plot it.
        "eval_set_version": dg.MetadataValue.text(str(fixed.version)),
        "eval_set_sha256": fixed.sha256,
        "candidate_weights_sha256": candidate_sha,
        "n_eval_records": dg.MetadataValue.int(len(fixed.records)),
        "n_held_out_records": dg.MetadataValue.int(len(held_out)),
        "evaluation_key": key,
        "evaluated": dg.MetadataValue.bool(reused is None),
        **mlflow.record_evaluation(
            context, value, [report_dir / "eval_report.md", report_dir / "eval_report.json"]
        ),
    }
    for prefix, scored in (("", results), ("held_out_", held_out_results)):
        for name, result in scored.items():
            for metric in METRICS:
                if result[metric] is not None:  # None: a diverged model (and a failed gate)
                    metadata[f"{prefix}{name}_{metric}"] = dg.MetadataValue.float(
                        float(result[metric])
                    )
    return dg.Output(value, metadata=metadata)
