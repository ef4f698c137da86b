"""The training stage: fine_tuned_model, trained under Dagster Pipes unless nothing changed."""

import json
from pathlib import Path

import dagster as dg

from genai_assets.defs.automation.policies import GPU_POOL
from genai_assets.defs.fine_tuning.configs import FineTuneConfig
from genai_assets.defs.fine_tuning.shared import fine_tuning_asset, loss_curve_table
from genai_assets.fine_tuning import paths, weights
from genai_assets.fine_tuning.k8s import GpuPodSettings, k8s_op_tags
from genai_assets.fine_tuning.training_job import (
    MANIFEST,
    SFTHyperparameters,
    TrainingJob,
    candidate_value,
    training_fingerprint,
)
from genai_assets.resources.mlflow_tracking import MlflowTrackingResource
from genai_assets.resources.training_runner import TrainingRunnerResource

# The GPU request for users of the k8s_job_executor (the whole step runs in a GPU pod).
# The Pipes pod of the training_runner resource is configured on the resource.
GPU_OP_TAGS = k8s_op_tags(GpuPodSettings())


@fine_tuning_asset(
    stage="training",
    code_version="2",
    kinds={"pytorch", "huggingface"},
    pool=GPU_POOL,
    op_tags=GPU_OP_TAGS,
)
def fine_tuned_model(
    context: dg.AssetExecutionContext,
    config: FineTuneConfig,
    training_runner: TrainingRunnerResource,
    mlflow: MlflowTrackingResource,
    base_model: dict,
    training_dataset: dict,
) -> dg.Output[dict]:
    """Train through the training runner, unless the last candidate had the same inputs.

    The base model fine-tuned on the training split (LoRA by default), trained by `python -m
    genai_assets.fine_tuning.sft` under Dagster Pipes: a local subprocess or a Kubernetes
    GPU pod (resource training_runner). A folder with a manifest.json (with the sha256 of
    its weights). Not trained again when the data, base model, hyperparameters and training
    code equal the last candidate's: the materialization says so and reuses it.
    """
    hyperparameters = SFTHyperparameters.from_dict(config.model_dump())
    name_or_path = base_model["name_or_path"]
    fingerprint = training_fingerprint(
        dataset_hash=training_dataset["content_hash"],
        # A local folder counts by its content: a rebuilt base model is a change.
        base_model=weights.folder_sha256(name_or_path)
        if Path(name_or_path).is_dir()
        else name_or_path,
        hyperparameters=hyperparameters,
    )
    reused = _last_candidate_if_unchanged(context, fingerprint)
    if reused is not None:
        output, manifest, run_id, model_version = reused
        reason = (
            f"nothing changed since run {run_id[:8]}: same training data, base model, "
            f"hyperparameters and training code, so training would reproduce {output}; "
            "not trained again"
        )
        context.log.info(reason)
        return dg.Output(
            candidate_value(output, manifest, model_version),
            metadata={
                "trained": dg.MetadataValue.bool(False),
                "reason": reason,
                "training_fingerprint": fingerprint,
                "weights_sha256": manifest["weights_sha256"],
                "model_dir": dg.MetadataValue.path(str(output)),
                "dataset_hash": training_dataset["content_hash"],
            },
        )
    # Hours of training must not end in a run that cannot be recorded (checked after the
    # reuse above: a run that trains nothing records nothing new).
    mlflow.check_reachable(context, "the fine-tuning run")
    output = paths.models_dir() / f"sft-{context.run.run_id[:8]}-{context.retry_number}"
    job = TrainingJob(
        base_model=name_or_path,
        dataset_dir=training_dataset["path"],
        output_dir=str(output),
        hyperparameters=hyperparameters,
        dataset_hash=training_dataset["content_hash"],
        base_model_label=base_model["label"],
        fingerprint=fingerprint,
    )
    invocation = training_runner.run(context, extras={"job": job.to_dict()})
    if not (output / MANIFEST).exists():
        raise dg.Failure(
            f"training finished but {output / MANIFEST} is not visible to this step; on "
            "Kubernetes, mount the artifact volume at $FINE_TUNING_ROOT in the Dagster run pod "
            "and in the training pod (training_runner.artifact_mount_path)"
        )
    manifest = json.loads((output / MANIFEST).read_text())
    history = manifest["training_metrics"]["loss_history"]
    streamed = [m for m in invocation.get_custom_messages() if m.get("kind") == "loss"]
    pipes_metadata = invocation.get_materialize_result().metadata or {}
    metadata = {
        **pipes_metadata,
        "trained": dg.MetadataValue.bool(True),
        "model_dir": dg.MetadataValue.path(str(output)),  # where the next run looks for it
        "training_fingerprint": fingerprint,
        "weights_sha256": manifest["weights_sha256"],
        "base_model": name_or_path,
        "base_model_label": base_model["label"],
        "dataset_hash": training_dataset["content_hash"],
        "method": config.method,
        "loss_curve": loss_curve_table(history),
        "loss_points_streamed": dg.MetadataValue.int(len(streamed)),
        "manifest": dg.MetadataValue.json(
            {k: v for k, v in manifest.items() if k != "training_metrics"}
        ),
    }
    for key, point in (("first_loss", history[:1]), ("last_loss", history[-1:])):
        if point and point[0]["loss"] is not None:
            metadata[key] = dg.MetadataValue.float(float(point[0]["loss"]))
    model_version, tracked = mlflow.record_fine_tuning(
        context, config.model_dump(), base_model, training_dataset, manifest, output / MANIFEST
    )
    metadata.update(tracked)
    if model_version is not None:  # found again by a run that reuses this candidate
        metadata["mlflow_model"] = dg.MetadataValue.json(model_version)
    return dg.Output(candidate_value(output, manifest, model_version), metadata=metadata)


def _last_candidate_if_unchanged(
    context: dg.AssetExecutionContext, fingerprint: str
) -> tuple[Path, dict, str, dict | None] | None:
    """The last candidate's folder, manifest, run and MLflow version, when its inputs were these.

    Only when its folder is still there with the same fingerprint and the weights
    its manifest recorded; anything else (no earlier candidate, other inputs, a
    deleted or altered folder) trains.
    """
    event = context.instance.get_latest_materialization_event(context.asset_key)
    if event is None or event.asset_materialization is None:
        return None
    metadata = event.asset_materialization.metadata
    last = metadata.get("training_fingerprint")
    folder = metadata.get("model_dir")
    if last is None or last.value != fingerprint or folder is None:
        return None
    output = Path(str(folder.value))
    if not (output / MANIFEST).exists():
        context.log.info(f"the last candidate {output} is gone: training again")
        return None
    manifest = json.loads((output / MANIFEST).read_text())
    if manifest.get("training_fingerprint") != fingerprint or "weights_sha256" not in manifest:
        return None
    try:
        weights.verify(output, manifest["weights_sha256"], f"{output / MANIFEST}")
    except weights.WeightsMismatch as error:
        context.log.warning(f"{error}: training again")
        return None
    registered = metadata.get("mlflow_model")
    return output, manifest, event.run_id, registered.value if registered is not None else None
