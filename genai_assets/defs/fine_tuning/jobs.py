"""The rollback of the serving config (fine_tuning_job itself comes from defs/automation)."""

import dagster as dg
from pydantic import Field

from genai_assets.defs.automation.jobs import FINE_TUNING_GROUP
from genai_assets.finetune import paths, serving
from genai_assets.resources.mlflow_tracking import MlflowTrackingResource


class RollbackConfig(dg.Config):
    """Why the serving config is rolled back (kept in the serving state)."""

    reason: str = Field(default="manual rollback", description="Recorded with the rollback.")


@dg.op(description="Restore the previous serving config; the current one is kept as rolled back.")
def rollback_serving_config_op(
    context: dg.OpExecutionContext, config: RollbackConfig, mlflow: MlflowTrackingResource
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
    tags={"genai_assets/domain": FINE_TUNING_GROUP},
)
def rollback_serving_config() -> None:
    """One op: restore the previous serving entry."""
    rollback_serving_config_op()
