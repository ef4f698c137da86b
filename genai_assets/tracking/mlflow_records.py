"""What each asset records in MLflow, built from its own values (no dagster import).

Fine-tuning: one run per ``fine_tuned_model`` materialization (hyperparameters,
dataset hash and split sizes, the loss curve step by step, the final training
metrics, the manifest); ``eval_report`` adds the held-out metrics of the
candidate, the base model and the champion and the report files to that run.
RAG quality: one run per evaluated collection.
"""

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from genai_assets.tracking.mlflow_tracker import RunRecord

# The artifact folder of a fine-tuning run that its model version points at.
MODEL_ARTIFACT_PATH = "model"
EVAL_METRICS = ("perplexity", "rouge_l", "bleu")
EVAL_ROLES = ("candidate", "base", "champion")
# The small files of a model folder that describe it (weights stay on the artifact volume).
MODEL_DESCRIPTION_FILES = ("config.json", "generation_config.json", "adapter_config.json")


def _numbers(values: Mapping[str, Any]) -> dict[str, float | None]:
    return {
        key: (None if value is None else float(value))
        for key, value in values.items()
        if value is None or (isinstance(value, int | float) and not isinstance(value, bool))
    }


def fine_tuning_record(
    name: str,
    tags: Mapping[str, str],
    hyperparameters: Mapping[str, Any],
    base_model: Mapping[str, Any],
    training_dataset: Mapping[str, Any],
    manifest: Mapping[str, Any],
    manifest_path: Path,
) -> RunRecord:
    """The run of one fine-tuning: params, the step-by-step loss curve and the manifest.

    Every numeric field of a loss-history point except ``step`` becomes a
    history of that name (``loss``, ``learning_rate``, ``grad_norm``...), as
    transformers' own MLflow callback names them; the trainer's summary
    (``train_loss``, ``eval_loss``...) is logged once.
    """
    metrics = manifest["training_metrics"]
    histories: dict[str, list[tuple[int, float | None]]] = {}
    for point in metrics.get("loss_history", []):
        for key, value in _numbers(point).items():
            if key != "step":
                histories.setdefault(key, []).append((int(point["step"]), value))
    params = {
        **hyperparameters,
        "base_model": base_model["name_or_path"],
        "base_model_label": base_model.get("label", ""),
        "dataset_hash": training_dataset["content_hash"],
        "dataset_source": training_dataset.get("source", ""),
        "n_train": training_dataset["n_train"],
        "n_eval": training_dataset["n_eval"],
        "n_quarantined": training_dataset.get("n_quarantined", 0),
        "artifact": manifest.get("artifact", ""),
    }
    model_dir = manifest_path.parent
    described = [model_dir / f for f in MODEL_DESCRIPTION_FILES if (model_dir / f).is_file()]
    return RunRecord(
        name=name,
        tags={
            **tags,
            "model_dir": str(model_dir),
            "dataset_hash": training_dataset["content_hash"],
        },
        params=params,
        # The trainer's summary (train_loss, eval_loss, global_step, train_runtime_s...) as named.
        metrics=_numbers({k: v for k, v in metrics.items() if k != "loss_history"}),
        histories=histories,
        artifacts={MODEL_ARTIFACT_PATH: [manifest_path, *described]},
        duration_s=metrics.get("train_runtime_s"),
    )


def evaluation_metrics(report: Mapping[str, Any]) -> dict[str, float | None]:
    """``candidate_perplexity``, ``base_rouge_l``... and ``gate_passed`` (1 or 0)."""
    metrics: dict[str, float | None] = {
        f"{role}_{metric}": report[role].get(metric)
        for role in EVAL_ROLES
        for metric in EVAL_METRICS
        if role in report
    }
    metrics["gate_passed"] = 1.0 if report["gate"]["passed"] else 0.0
    metrics["n_eval_records"] = float(report["n_eval_records"])
    return metrics


def rag_quality_records(
    tags: Mapping[str, str],
    params: Mapping[str, Any],
    evaluated: Iterable[tuple[str, str, str, Mapping[str, float | None]]],
) -> list[RunRecord]:
    """One run per evaluated ``(role, collection, model, mean scores)``."""
    return [
        RunRecord(
            name=f"{collection} ({role})",
            tags={**tags, "role": role, "collection": collection},
            params={**params, "collection": collection, "model": model, "role": role},
            # A metric that was not computed (no LLM configured) is left out, not logged as NaN.
            metrics={key: value for key, value in means.items() if value is not None},
        )
        for role, collection, model, means in evaluated
    ]
