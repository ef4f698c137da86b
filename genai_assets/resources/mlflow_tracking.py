"""MLflow tracking and model registry for the fine-tuning and RAG quality assets.

Off unless ``tracking_uri`` is set (``MLFLOW_TRACKING_URI`` in
``genai_assets.defs.resources``): then every method returns without a call.
When on, each ``fine_tuned_model`` materialization is a run of
``fine_tuning_experiment``, its model folder a version of
``registered_model_name``, and the registry alias ``champion`` follows the
serving config (promotion and rollback). ``rag_quality_metrics`` records a run
per evaluated collection in ``rag_quality_experiment``.

When MLflow does not answer after its retries the step fails with the reason
(``on_failure="fail"``, the default); with ``on_failure="warn"`` it goes on and
its materialization says what was not recorded.
"""

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

import dagster as dg
from pydantic import Field

from genai_assets import settings
from genai_assets.automation import alerts
from genai_assets.tracking import mlflow_records
from genai_assets.tracking.mlflow_tracker import (
    DEFAULT_REGISTERED_MODEL,
    MlflowSettings,
    MlflowTracker,
    ModelVersionRef,
    TrackingError,
)

T = TypeVar("T")


class MlflowTrackingResource(dg.ConfigurableResource):
    """Where runs and model versions are recorded; secrets through ``dg.EnvVar``."""

    tracking_uri: str | None = Field(
        default=None,
        description="MLflow tracking server, e.g. https://mlflow.example.com; None: MLflow off.",
    )
    registry_uri: str | None = Field(
        default=None, description="Model registry URI when it differs from the tracking URI."
    )
    username: str | None = Field(default=None, description="Basic-auth user; use dg.EnvVar.")
    password: str | None = Field(default=None, description="Basic-auth password; use dg.EnvVar.")
    token: str | None = Field(default=None, description="Bearer token; use dg.EnvVar.")
    fine_tuning_experiment: str = Field(
        default="genai_assets/fine_tuning", description="Experiment of the fine-tuning runs."
    )
    rag_quality_experiment: str = Field(
        default="genai_assets/rag_quality", description="Experiment of the RAG quality runs."
    )
    registered_model_name: str = Field(
        default=DEFAULT_REGISTERED_MODEL,
        description="Registered model whose versions are the fine-tuned candidates.",
    )
    on_failure: Literal["fail", "warn"] = Field(
        default="fail",
        description="fail: the step fails when MLflow does not answer; warn: best effort, the "
        "materialization says what was not recorded.",
    )
    max_retries: int = Field(default=3, ge=0, description="MLflow HTTP retries per request.")
    backoff_factor: int = Field(
        default=2, ge=0, description="MLflow HTTP exponential backoff factor (seconds)."
    )
    timeout_s: float = Field(default=30.0, gt=0, description="Per-request timeout in seconds.")

    @property
    def is_configured(self) -> bool:
        """Whether a tracking server is configured."""
        return bool(self.tracking_uri)

    def tracker(self) -> MlflowTracker:
        """The pure tracker on the configured server."""
        if not self.tracking_uri:
            raise ValueError("MlflowTrackingResource.tracking_uri is not set (MLflow is off)")
        # The resource's fields of the same names are the tracker's settings.
        names = [f.name for f in dataclasses.fields(MlflowSettings)]
        return MlflowTracker(MlflowSettings(**{name: getattr(self, name) for name in names}))

    def _record(
        self,
        context: dg.OpExecutionContext,
        what: str,
        action: Callable[[MlflowTracker], T],
    ) -> tuple[T | None, dict[str, Any]]:
        """Run ``action``; on TrackingError fail, or (warn) say in metadata it was not recorded."""
        if not self.is_configured:
            return None, {}
        try:
            return action(self.tracker()), {}
        except TrackingError as error:
            if self.on_failure == "fail":
                raise dg.Failure(
                    description=f"{what} was not recorded in MLflow: {error}",
                    metadata={"mlflow": dg.MetadataValue.text(f"not recorded: {error}")},
                ) from error
            context.log.warning(f"{what} was not recorded in MLflow: {error}")
            return None, {"mlflow": dg.MetadataValue.text(f"not recorded: {error}")}

    def _tags(self, context: dg.OpExecutionContext) -> dict[str, str]:
        asset = context.asset_key.to_user_string() if context.has_assets_def else ""
        tags = {
            "dagster.run_id": context.run.run_id,
            "dagster.job": context.job_name,
            "dagster.asset": asset,
            "dagster.run_url": alerts.run_url(settings.ui_base_url(), context.run.run_id),
        }
        if context.has_partition_key:
            tags["dagster.partition"] = context.partition_key
        return tags

    def check_reachable(self, context: dg.OpExecutionContext, what: str) -> None:
        """Before long or irreversible work: fail now if its record could not be written."""
        self._record(context, what, lambda tracker: tracker.check_reachable())

    def record_fine_tuning(
        self,
        context: dg.AssetExecutionContext,
        hyperparameters: Mapping[str, Any],
        base_model: Mapping[str, Any],
        training_dataset: Mapping[str, Any],
        manifest: Mapping[str, Any],
        manifest_path: Path,
    ) -> tuple[dict[str, str] | None, dict[str, Any]]:
        """Log the fine-tuning run and register its model: ``(version ref or None, metadata)``.

        The version ref travels in the asset value to eval_report and serving_config.
        """
        record = mlflow_records.fine_tuning_record(
            f"fine_tuned_model {context.run.run_id[:8]}",
            self._tags(context),
            hyperparameters,
            base_model,
            training_dataset,
            manifest,
            manifest_path,
        )

        def log(tracker: MlflowTracker) -> tuple[ModelVersionRef, str | None]:
            experiment_id, run_id = tracker.log_run(self.fine_tuning_experiment, record)
            ref = tracker.register(
                self.registered_model_name,
                run_id,
                mlflow_records.MODEL_ARTIFACT_PATH,
                {"model_dir": str(manifest_path.parent), "dagster.run_id": context.run.run_id},
            )
            return ref, tracker.run_url(experiment_id, run_id)

        logged, metadata = self._record(context, "the fine-tuning run", log)
        if logged is None:
            return None, metadata
        ref, url = logged
        return ref.to_dict(), _run_metadata(ref.run_id, url, ref)

    def record_evaluation(
        self, context: dg.AssetExecutionContext, report: Mapping[str, Any], files: Sequence[Path]
    ) -> dict[str, Any]:
        """Add the held-out metrics of candidate, base and champion to the candidate's run."""
        ref = ModelVersionRef.from_dict(report["candidate_model"].get("mlflow"))
        if not self.is_configured:
            return {}
        if ref is None:
            return {"mlflow": "not recorded: fine_tuned_model was materialized without MLflow"}
        verdict = "passed" if report["gate"]["passed"] else "failed"

        def log(tracker: MlflowTracker) -> bool:
            tracker.update_run(
                ref.run_id,
                mlflow_records.evaluation_metrics(report),
                {"gate": verdict, "dagster.eval_report_run_id": context.run.run_id},
                {"eval_report": list(files)},
            )
            tracker.set_model_version_tags(ref, {"gate": verdict})
            return True

        done, metadata = self._record(context, "the evaluation", log)
        return metadata if done is None else _run_metadata(ref.run_id)

    def record_serving(
        self, context: dg.OpExecutionContext, served: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        """Point the alias ``champion`` at the served model's version (removed if unregistered).

        Called after every promotion and rollback, so the registry agrees with what is served.
        """
        ref = ModelVersionRef.from_dict(served)

        def move(tracker: MlflowTracker) -> str:
            tracker.set_champion(self.registered_model_name, ref)
            if ref is None:
                return "none: the served model was not registered in MLflow"
            return f"{ref.name} version {ref.version}"

        champion, metadata = self._record(context, "the champion alias", move)
        return metadata if champion is None else {"mlflow_champion": champion}

    def record_rag_quality(
        self,
        context: dg.AssetExecutionContext,
        evaluated: Iterable[tuple[str, str, str, Mapping[str, float | None]]],
        params: Mapping[str, Any],
    ) -> dict[str, Any]:
        """One run per evaluated ``(role, collection, model, mean scores)``."""
        records = mlflow_records.rag_quality_records(self._tags(context), params, evaluated)

        def log(tracker: MlflowTracker) -> list[str]:
            return [tracker.log_run(self.rag_quality_experiment, r)[1] for r in records]

        run_ids, metadata = self._record(context, "the RAG quality runs", log)
        if run_ids is None:
            return metadata
        return {"mlflow_run_ids": dg.MetadataValue.json(run_ids)}


def _run_metadata(
    run_id: str, url: str | None = None, ref: ModelVersionRef | None = None
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"mlflow_run_id": run_id}
    if url:
        metadata["mlflow_run"] = dg.MetadataValue.url(url)
    if ref is not None:
        metadata["mlflow_model_version"] = f"{ref.name} version {ref.version}"
    return metadata
