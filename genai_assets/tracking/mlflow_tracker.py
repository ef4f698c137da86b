"""Runs, metric histories, artifacts and registry aliases in MLflow (no dagster import).

A thin layer over ``mlflow.MlflowClient`` (from ``mlflow-skinny``) that the
Dagster resource ``genai_assets.resources.mlflow_tracking`` drives:

* :meth:`MlflowTracker.log_run` records one finished run (tags, params,
  metrics, step-by-step metric histories, artifacts) in an experiment;
* :meth:`MlflowTracker.register` makes a run's artifact folder a model version;
* :meth:`MlflowTracker.set_champion` points the registry alias at the version
  being served (or removes it when the served model was never registered).

Every call goes through MLflow's own HTTP retries (backoff on connection
errors, 429 and 5xx) and then fails with :class:`TrackingError`, which names
the server, what was being recorded and why: a record is never dropped quietly.
"""

import json
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

CHAMPION_ALIAS = "champion"
DEFAULT_REGISTERED_MODEL = "genai_assets_fine_tuned_model"
# MLflow refuses a log_batch call with more than 1,000 metrics (and 100 params).
_MAX_METRICS_PER_BATCH = 1000
_MAX_PARAMS_PER_BATCH = 100

T = TypeVar("T")


class TrackingError(RuntimeError):
    """MLflow did not record something after its retries."""


@dataclass(frozen=True)
class MlflowSettings:
    """Where the tracking server is and how hard to try."""

    tracking_uri: str
    registry_uri: str | None = None
    username: str | None = None
    password: str | None = None
    token: str | None = None
    max_retries: int = 3
    backoff_factor: int = 2
    timeout_s: float = 30.0


@dataclass
class RunRecord:
    """One MLflow run: everything is written, then the run is marked FINISHED."""

    name: str
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    # None means not finite (a diverged model): logged as NaN so the UI shows the gap.
    metrics: dict[str, float | None] = field(default_factory=dict)
    # Metric histories: name -> [(step, value)], e.g. the training loss curve.
    histories: dict[str, list[tuple[int, float | None]]] = field(default_factory=dict)
    # Artifact folder in the run -> local files uploaded into it.
    artifacts: dict[str, list[Path]] = field(default_factory=dict)
    # How long the recorded work took (e.g. training): the run then starts that long
    # before it is written, so MLflow shows the real duration, not the logging time.
    duration_s: float | None = None


@dataclass(frozen=True)
class ModelVersionRef:
    """A registered model version (what the registry alias points at)."""

    name: str
    version: str
    run_id: str

    def to_dict(self) -> dict[str, str]:
        """JSON-compatible form, stored in asset values and the serving state."""
        return {"name": self.name, "version": self.version, "run_id": self.run_id}

    @classmethod
    def from_dict(cls, values: Mapping[str, str] | None) -> "ModelVersionRef | None":
        """Inverse of :meth:`to_dict`; None for an entry recorded without MLflow."""
        if not values:
            return None
        return cls(values["name"], str(values["version"]), values["run_id"])


def _as_param(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def _as_metric(value: float | None) -> float:
    return math.nan if value is None else float(value)


class MlflowTracker:
    """Records runs and moves registry aliases on one tracking server."""

    def __init__(self, settings: MlflowSettings) -> None:
        self.settings = settings
        self._client = None
        self._experiment_ids: dict[str, str] = {}

    # MLflow reads credentials and HTTP retry settings only from the environment.
    _ENV = {
        "username": "MLFLOW_TRACKING_USERNAME",
        "password": "MLFLOW_TRACKING_PASSWORD",
        "token": "MLFLOW_TRACKING_TOKEN",
    }

    @contextmanager
    def _environment(self) -> Iterator[None]:
        values = {
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(self.settings.max_retries),
            "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": str(int(self.settings.backoff_factor)),
            "MLFLOW_HTTP_REQUEST_TIMEOUT": str(int(math.ceil(self.settings.timeout_s))),
        }
        for attribute, variable in self._ENV.items():
            if getattr(self.settings, attribute):
                values[variable] = getattr(self.settings, attribute)
        saved = {name: os.environ.get(name) for name in values}
        os.environ.update(values)
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

    @property
    def client(self):
        """The MlflowClient (imported on first use: mlflow takes a second to import)."""
        if self._client is None:
            from mlflow import MlflowClient

            self._client = MlflowClient(
                tracking_uri=self.settings.tracking_uri,
                registry_uri=self.settings.registry_uri or self.settings.tracking_uri,
            )
        return self._client

    def _call(self, what: str, action: Callable[[], T]) -> T:
        import requests
        from mlflow.exceptions import MlflowException

        with self._environment():
            try:
                return action()
            except (MlflowException, requests.RequestException, OSError) as error:
                raise TrackingError(
                    f"MLflow at {self.settings.tracking_uri} did not record {what} after "
                    f"{self.settings.max_retries} retries: {type(error).__name__}: {error}"
                ) from error

    def run_url(self, experiment_id: str, run_id: str) -> str | None:
        """The run's page in the MLflow UI, for an HTTP tracking server."""
        uri = self.settings.tracking_uri.rstrip("/")
        if not uri.startswith(("http://", "https://")):
            return None
        return f"{uri}/#/experiments/{experiment_id}/runs/{run_id}"

    def check_reachable(self) -> None:
        """Fail now (after retries) rather than after hours of work that must be recorded."""
        self._call("a reachability check", lambda: self.client.search_experiments(max_results=1))

    def experiment_id(self, name: str) -> str:
        """The id of experiment ``name``, created when it does not exist yet."""
        if name not in self._experiment_ids:
            self._experiment_ids[name] = self._call(
                f"experiment {name!r}", lambda: self._get_or_create_experiment(name)
            )
        return self._experiment_ids[name]

    def _get_or_create_experiment(self, name: str) -> str:
        from mlflow.exceptions import MlflowException

        experiment = self.client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        try:
            return self.client.create_experiment(name)
        except MlflowException as error:
            if error.error_code != "RESOURCE_ALREADY_EXISTS":  # another run created it first
                raise
            return self.client.get_experiment_by_name(name).experiment_id

    def log_run(self, experiment: str, record: RunRecord) -> tuple[str, str]:
        """Write ``record`` as a finished run of ``experiment``; ``(experiment_id, run_id)``."""
        experiment_id = self.experiment_id(experiment)
        start_ms = int(time.time() * 1000 - (record.duration_s or 0) * 1000)
        run = self._call(
            f"the start of run {record.name!r}",
            lambda: self.client.create_run(
                experiment_id, start_time=start_ms, run_name=record.name, tags=record.tags
            ),
        )
        run_id = run.info.run_id
        self._call(f"run {record.name!r} ({run_id})", lambda: self._fill(run_id, record))
        return experiment_id, run_id

    def _fill(self, run_id: str, record: RunRecord) -> None:
        from mlflow.entities import Metric, Param

        now_ms = self.client.get_run(run_id).info.start_time
        params = [Param(key, _as_param(value)) for key, value in sorted(record.params.items())]
        metrics = [
            Metric(key, _as_metric(value), now_ms, 0)
            for key, value in sorted(record.metrics.items())
        ]
        for key, points in record.histories.items():
            metrics += [Metric(key, _as_metric(value), now_ms, int(step)) for step, value in points]
        for start in range(0, len(params), _MAX_PARAMS_PER_BATCH):
            self.client.log_batch(run_id, params=params[start : start + _MAX_PARAMS_PER_BATCH])
        for start in range(0, len(metrics), _MAX_METRICS_PER_BATCH):
            self.client.log_batch(run_id, metrics=metrics[start : start + _MAX_METRICS_PER_BATCH])
        for artifact_path, files in record.artifacts.items():
            for path in files:
                self.client.log_artifact(run_id, str(path), artifact_path=artifact_path)
        self.client.set_terminated(run_id, "FINISHED")

    def update_run(
        self,
        run_id: str,
        metrics: Mapping[str, float | None],
        tags: Mapping[str, str],
        artifacts: Mapping[str, Sequence[Path]],
    ) -> None:
        """Add metrics (at step 0), tags and artifacts to an existing run."""

        def update() -> None:
            from mlflow.entities import Metric, RunTag

            now_ms = self.client.get_run(run_id).info.start_time
            self.client.log_batch(
                run_id,
                metrics=[Metric(k, _as_metric(v), now_ms, 0) for k, v in sorted(metrics.items())],
                tags=[RunTag(k, v) for k, v in sorted(tags.items())],
            )
            for artifact_path, files in artifacts.items():
                for path in files:
                    self.client.log_artifact(run_id, str(path), artifact_path=artifact_path)

        self._call(f"the update of run {run_id}", update)

    def register(
        self, model_name: str, run_id: str, artifact_path: str, tags: Mapping[str, str]
    ) -> ModelVersionRef:
        """Register the run's ``artifact_path`` folder as a new version of ``model_name``."""

        def register() -> ModelVersionRef:
            from mlflow.exceptions import MlflowException

            try:
                self.client.create_registered_model(model_name)
            except MlflowException as error:
                if error.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
            version = self.client.create_model_version(
                model_name, source=f"runs:/{run_id}/{artifact_path}", run_id=run_id, tags=tags
            )
            return ModelVersionRef(model_name, str(version.version), run_id)

        return self._call(f"a version of registered model {model_name!r}", register)

    def set_model_version_tags(self, ref: ModelVersionRef, tags: Mapping[str, str]) -> None:
        """Tag a model version (e.g. with its gate verdict)."""

        def tag() -> None:
            for key, value in tags.items():
                self.client.set_model_version_tag(ref.name, ref.version, key, value)

        self._call(f"tags of {ref.name} version {ref.version}", tag)

    def champion(self, model_name: str, alias: str = CHAMPION_ALIAS) -> str | None:
        """The version the alias points at, or None (no alias, or no such model)."""

        def read() -> str | None:
            from mlflow.exceptions import MlflowException

            try:
                return str(self.client.get_model_version_by_alias(model_name, alias).version)
            except MlflowException as error:
                if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                    return None
                raise

        return self._call(f"alias {alias!r} of {model_name!r}", read)

    def set_champion(
        self, model_name: str, ref: ModelVersionRef | None, alias: str = CHAMPION_ALIAS
    ) -> None:
        """Point ``alias`` at ``ref``; with None (an unregistered model is served) remove it."""
        if ref is not None:
            self._call(
                f"alias {alias!r} -> {ref.name} version {ref.version}",
                lambda: self.client.set_registered_model_alias(ref.name, alias, ref.version),
            )
        elif self.champion(model_name, alias) is not None:
            self._call(
                f"the removal of alias {alias!r} of {model_name!r}",
                lambda: self.client.delete_registered_model_alias(model_name, alias),
            )
