"""The fine-tuning domain's jobs: fine_tuning_job, and the rollback of the serving config."""

import dagster as dg

from genai_assets.defs.automation.domains import DOMAIN_TAG, FINE_TUNING_GROUP, FINE_TUNING_JOB
from genai_assets.defs.fine_tuning.configs import ModelRollbackConfig
from genai_assets.fine_tuning import paths, serving
from genai_assets.resources.mlflow_tracking import MlflowTrackingResource

fine_tuning_job = dg.define_asset_job(
    name=FINE_TUNING_JOB,
    selection=dg.AssetSelection.groups(FINE_TUNING_GROUP),
    description="Fine-tune the model: build the training dataset, train, evaluate against the "
    "promotion gate and publish the serving config.",
    # One fine-tuning run at a time (dagster.yaml's tag_concurrency_limits): two would
    # fight over the same GPU.
    tags={DOMAIN_TAG: FINE_TUNING_GROUP},
)


@dg.op(description="Restore the previous serving config; the current one is kept as rolled back.")
def rollback_serving_config_op(
    context: dg.OpExecutionContext, config: ModelRollbackConfig, mlflow: MlflowTrackingResource
) -> dict:
    """Roll back and record a materialization of serving_config with the restored entry."""
    serving_dir = paths.serving_dir()
    mlflow.check_reachable(context, "the champion alias")  # before the rollback, as promotion
    try:
        restored = serving.rollback(serving_dir, reason=config.reason)
    except ValueError as error:
        raise dg.Failure(str(error)) from error
    context.log_event(
        dg.AssetMaterialization(
            asset_key="serving_config",
            description=f"rolled back to version {restored['version']}: {config.reason}",
            metadata={
                "version": dg.MetadataValue.int(restored["version"]),
                "model_dir": dg.MetadataValue.path(restored["model_dir"]),
                "config_path": dg.MetadataValue.path(str(serving_dir / serving.VLLM_CONFIG)),
                "rollback": dg.MetadataValue.bool(True),
                # The registry alias follows: champion is the restored model's version again.
                **mlflow.record_serving(context, restored.get("mlflow")),
            },
        )
    )
    return restored


@dg.job(
    description="Put the previous model back into the serving config (vLLM config and state), "
    "under the serving lock and, by its domain tag, under the one-fine-tuning-run limit.",
    # dagster.yaml admits one run with this tag at a time: a rollback never runs beside a
    # promotion (the serving lock also orders it against the command-line rollback).
    tags={DOMAIN_TAG: FINE_TUNING_GROUP},
)
def rollback_serving_config() -> None:
    """One op: restore the previous serving entry."""
    rollback_serving_config_op()
