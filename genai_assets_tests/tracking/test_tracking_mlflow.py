"""Fine-tuning and RAG quality recorded in a real ``mlflow server``, read back with MlflowClient.

The whole fine-tuning graph runs for real (tiny model trained under Dagster
Pipes, evaluated, promoted); MLflow is a real tracking server with a SQLite
backend and a model registry on 127.0.0.1. No test double.
"""

import json
import math

import dagster as dg
import pytest
from dagster_aws.s3 import S3Resource
from mlflow import MlflowClient

from genai_assets.defs.fine_tuning import jobs
from genai_assets.defs.rag import assets as rag_assets
from genai_assets.defs.rag import quality_metrics
from genai_assets.defs.resources import build_resources
from genai_assets.fine_tuning import paths, serving
from genai_assets.fine_tuning.eval_set import write_eval_set
from genai_assets.io_managers import LocalFormatIOManager
from genai_assets.resources.embeddings import SentenceTransformerResource
from genai_assets.resources.mlflow_tracking import MlflowTrackingResource
from genai_assets.resources.openai_api import OpenAICompatibleResource
from genai_assets.resources.training_runner import TrainingRunnerResource
from genai_assets_tests.fine_tuning.conftest import (
    FINE_TUNING_DEFS,
    eval_records,
    good_records,
    write_jsonl,
)
from genai_assets_tests.tracking.conftest import free_port

pytestmark = pytest.mark.slow

DOWNSTREAM = ["fine_tuned_model", "eval_report", "serving_config"]
MODEL = "genai_assets_fine_tuned_model"


@pytest.fixture(scope="module")
def training_data_dir(tmp_path_factory):
    """The fine-tuning tests' hand-made records (on which full fine-tuning beats LoRA)."""
    folder = tmp_path_factory.mktemp("training_data")
    records = good_records()
    write_jsonl(folder / "chat.jsonl", [r for r in records if "messages" in r])
    write_jsonl(folder / "instructions.jsonl", [r for r in records if "messages" not in r])
    # The fine-tuning tests' fixed evaluation set, on the same facts as these records (kept
    # outside the folder, which is read whole as training data).
    write_eval_set(eval_set_path(folder), eval_records(), "skyline-test", 1)
    return folder


def eval_set_path(training_data_dir):
    return training_data_dir.parent / f"{training_data_dir.name}_eval" / "skyline_test_v1.jsonl"


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dagster_home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DAGSTER_HOME", str(folder))
        patch.delenv(paths.ROOT_VARIABLE, raising=False)
        yield folder


def fine_tune(home, training_data_dir, mlflow, training=None, selection=None):
    ops = {
        "base_model": {
            "config": {"tokenizer_text_dirs": [str(training_data_dir)], "pretrain_text_dirs": []}
        },
        "training_dataset": {
            "config": {
                "source": str(training_data_dir),
                "min_valid_records": 40,
                "eval_set": str(eval_set_path(training_data_dir)),
            }
        },
        "fine_tuned_model": {
            "config": {"max_steps": 30, "batch_size": 8, "logging_steps": 5, **(training or {})}
        },
        "eval_report": {"config": {"max_generation_examples": 6, "max_new_tokens": 16}},
    }
    return dg.materialize(
        FINE_TUNING_DEFS,
        selection=selection,
        run_config={"ops": {k: v for k, v in ops.items() if not selection or k in selection}},
        resources={
            "training_runner": TrainingRunnerResource(env={"OMP_NUM_THREADS": "1"}),
            "s3": S3Resource(),  # unused: the training data is a local folder
            "io_manager": LocalFormatIOManager(base_dir=str(home / "io")),
            "mlflow": mlflow,
        },
        raise_on_error=False,
    )


def metadata_of(result, asset: str) -> dict:
    [event] = result.asset_materializations_for_node(asset)
    return {key: getattr(value, "value", value) for key, value in event.metadata.items()}


@pytest.fixture(scope="module")
def tracking(mlflow_server):
    return MlflowTrackingResource(tracking_uri=mlflow_server)


@pytest.fixture(scope="module")
def first_run(home, training_data_dir, tracking):
    result = fine_tune(home, training_data_dir, tracking)
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    return result


def test_fine_tuning_run_has_params_loss_curve_eval_metrics_artifacts_and_dagster_tags(
    mlflow_server, first_run
):
    client = MlflowClient(mlflow_server)
    run_id = metadata_of(first_run, "fine_tuned_model")["mlflow_run_id"]
    run = client.get_run(run_id)
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.name == "genai_assets/fine_tuning"
    assert run.info.status == "FINISHED"
    assert run.data.tags["dagster.run_id"] == first_run.run_id
    assert run.data.tags["dagster.asset"] == "fine_tuned_model"

    dataset = first_run.output_for_node("training_dataset")
    params = run.data.params
    assert params["dataset_hash"] == dataset["content_hash"]
    assert (params["n_train"], params["n_eval"]) == (
        str(dataset["n_train"]),
        str(dataset["n_eval"]),
    )
    assert (params["learning_rate"], params["max_steps"], params["method"]) == (
        "0.005",
        "30",
        "lora",
    )

    # The loss curve step by step, the same points as the manifest's history.
    with open(first_run.output_for_node("fine_tuned_model")["manifest_path"]) as handle:
        manifest = json.load(handle)
    expected = [(p["step"], p["loss"]) for p in manifest["training_metrics"]["loss_history"]]
    history = sorted((m.step, m.value) for m in client.get_metric_history(run_id, "loss"))
    assert len(history) >= 5
    assert [(s, round(v, 6)) for s, v in history] == [(s, round(v, 6)) for s, v in expected]

    report = first_run.output_for_node("eval_report")
    for role in ("candidate", "base", "champion"):
        assert math.isclose(run.data.metrics[f"{role}_perplexity"], report[role]["perplexity"])
    assert run.data.metrics["gate_passed"] == 1.0
    assert run.data.tags["gate"] == "passed"

    artifacts = {a.path for a in client.list_artifacts(run_id, "model")}
    assert {"model/manifest.json", "model/config.json"} <= artifacts
    reports = {a.path for a in client.list_artifacts(run_id, "eval_report")}
    assert reports == {"eval_report/eval_report.md", "eval_report/eval_report.json"}
    local = client.download_artifacts(run_id, "model/manifest.json")
    with open(local) as handle:
        assert json.load(handle)["dataset_hash"] == dataset["content_hash"]


def test_champion_alias_follows_promotion_and_rollback(
    mlflow_server, home, training_data_dir, tracking, first_run
):
    client = MlflowClient(mlflow_server)
    first = first_run.output_for_node("fine_tuned_model")["mlflow"]
    assert client.get_model_version_by_alias(MODEL, "champion").version == first["version"]
    assert metadata_of(first_run, "serving_config")["mlflow_champion"] == (
        f"{MODEL} version {first['version']}"
    )

    # A better candidate (full fine-tuning) is promoted: the alias moves to its version.
    better = fine_tune(
        home,
        training_data_dir,
        tracking,
        training={"method": "full", "learning_rate": 2e-3},
        selection=DOWNSTREAM,
    )
    assert better.success
    second = better.output_for_node("fine_tuned_model")["mlflow"]
    assert second["version"] != first["version"]
    served = serving.current_entry(paths.serving_dir())
    assert served["mlflow"] == second
    champion = client.get_model_version_by_alias(MODEL, "champion")
    assert (champion.version, champion.run_id) == (second["version"], second["run_id"])

    rollback = jobs.rollback_serving_config.execute_in_process(
        run_config={"ops": {"rollback_serving_config_op": {"config": {"reason": "test"}}}},
        resources={"mlflow": tracking},
    )
    assert rollback.success
    assert serving.current_entry(paths.serving_dir())["mlflow"] == first
    assert client.get_model_version_by_alias(MODEL, "champion").version == first["version"]


def test_unreachable_mlflow_fails_before_training_with_the_reason(
    home, training_data_dir, first_run
):
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    models_before = set(paths.models_dir().iterdir())
    result = fine_tune(
        home,
        training_data_dir,
        MlflowTrackingResource(tracking_uri=uri, max_retries=1, backoff_factor=0),
        selection=["fine_tuned_model"],
    )
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    message = failure.step_failure_data.user_failure_data.description
    assert f"the fine-tuning run was not recorded in MLflow: MLflow at {uri} did not record" in (
        message
    )
    assert "Connection refused" in message or "Failed to establish" in message
    assert set(paths.models_dir().iterdir()) == models_before  # nothing was trained


def test_best_effort_mlflow_says_in_the_materialization_what_was_not_recorded(
    home, training_data_dir, first_run
):
    uri = f"http://127.0.0.1:{free_port()}"
    result = fine_tune(
        home,
        training_data_dir,
        MlflowTrackingResource(tracking_uri=uri, max_retries=0, on_failure="warn"),
        selection=["fine_tuned_model"],
    )
    assert result.success
    assert result.output_for_node("fine_tuned_model")["mlflow"] is None
    recorded = metadata_of(result, "fine_tuned_model")["mlflow"]
    assert recorded.startswith(f"not recorded: MLflow at {uri} did not record")


def test_rag_quality_metrics_records_a_run_per_evaluated_collection(
    mlflow_server, tmp_path, monkeypatch
):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    result = dg.materialize(
        [
            rag_assets.raw_documents,
            rag_assets.document_embeddings,
            quality_metrics.rag_quality_metrics,
        ],
        resources={
            **build_resources("local"),
            "embedder": SentenceTransformerResource(dtype="bf16", device="cpu"),
            "llm": OpenAICompatibleResource(),
            "mlflow": MlflowTrackingResource(tracking_uri=mlflow_server),
        },
    )
    metadata = metadata_of(result, "rag_quality_metrics")
    client = MlflowClient(mlflow_server)
    [run_id] = metadata["mlflow_run_ids"]
    run = client.get_run(run_id)
    assert client.get_experiment(run.info.experiment_id).name == "genai_assets/rag_quality"
    assert run.data.tags["collection"] == metadata["collection"]
    assert run.data.tags["role"] == "candidate"
    assert run.data.tags["dagster.run_id"] == result.run_id
    assert run.data.params["k"] == "5"
    for metric in ("hit_rate_at_k", "recall_at_k", "mrr", "ndcg_at_k"):
        assert math.isclose(run.data.metrics[metric], metadata[metric], abs_tol=1e-6)


def test_command_line_rollback_moves_the_alias_back_too(mlflow_server, tmp_path, monkeypatch):
    from genai_assets.fine_tuning import rollback as rollback_cli
    from genai_assets.tracking.mlflow_tracker import MlflowSettings, MlflowTracker, RunRecord

    tracker = MlflowTracker(MlflowSettings(mlflow_server))
    name = "cli_rollback_model"
    refs = []
    for run in ("older", "newer"):
        _, run_id = tracker.log_run("cli_rollback", RunRecord(run))
        refs.append(tracker.register(name, run_id, "model", {}))
    for version, ref in enumerate(refs, start=1):
        entry = {"model_dir": f"/models/{version}", "vllm": {"model": f"/models/{version}"}}
        serving.promote(tmp_path, {**entry, "mlflow": ref.to_dict()})
    tracker.set_champion(name, refs[1])

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    argv = ["--serving-dir", str(tmp_path), "--registered-model", name]
    assert rollback_cli.main(argv) == 0
    assert serving.current_entry(tmp_path)["mlflow"] == refs[0].to_dict()
    assert MlflowClient(mlflow_server).get_model_version_by_alias(name, "champion").version == (
        refs[0].version
    )
