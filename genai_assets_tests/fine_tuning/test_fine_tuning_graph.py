"""The whole fine-tuning graph on CPU with the tiny model, through dg.materialize.

Real components throughout: the tiny model is built and trained for real in a
subprocess under Dagster Pipes, evaluated for real, and the serving config is
written to a temporary DAGSTER_HOME.
"""

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import openai
import pytest
import yaml
from dagster_aws.s3 import S3Resource

from genai_assets.defs.fine_tuning import jobs
from genai_assets.fine_tuning import paths, serving, weights
from genai_assets.io_managers import LocalFormatIOManager
from genai_assets.resources.mlflow_tracking import MlflowTrackingResource
from genai_assets.resources.training_runner import TrainingRunnerResource
from genai_assets_tests.fine_tuning.conftest import FINE_TUNING_DEFS

pytestmark = pytest.mark.slow

FAST_TRAINING = {"max_steps": 30, "batch_size": 8, "logging_steps": 5}
FAST_EVAL = {"max_generation_examples": 6, "max_new_tokens": 16}
DOWNSTREAM = ["fine_tuned_model", "eval_report", "serving_config"]


@pytest.fixture(scope="module")
def home(tmp_path_factory, fixed_eval_set):
    """A DAGSTER_HOME of its own, so the serving config starts empty, and one instance.

    The instance is shared by the module's runs, as a deployment's is: the fine-tuning
    asset looks up its last candidate there.
    """
    folder = tmp_path_factory.mktemp("dagster_home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DAGSTER_HOME", str(folder))
        patch.delenv(paths.ROOT_VARIABLE, raising=False)
        with dg.DagsterInstance.ephemeral() as instance:
            yield Home(folder, instance, fixed_eval_set)


class Home:
    """The module's DAGSTER_HOME folder, its instance and the fixed evaluation set."""

    def __init__(self, folder, instance, eval_set):
        self.folder, self.instance, self.eval_set = folder, instance, eval_set

    def __truediv__(self, name):
        return self.folder / name


def materialize(
    home, training_data_dir, training=None, selection=None, eval_config=None, source=None
):
    run_config = {
        "ops": {
            "base_model": {
                "config": {
                    "tokenizer_text_dirs": [str(training_data_dir)],
                    "pretrain_text_dirs": [],
                }
            },
            "training_dataset": {
                "config": {
                    "source": str(source or training_data_dir),
                    "min_valid_records": 40,
                    "eval_set": str(home.eval_set),
                }
            },
            "fine_tuned_model": {"config": {**FAST_TRAINING, **(training or {})}},
            "eval_report": {"config": {**FAST_EVAL, **(eval_config or {})}},
        }
    }
    if selection:
        run_config["ops"] = {k: v for k, v in run_config["ops"].items() if k in selection}
    return dg.materialize(
        FINE_TUNING_DEFS,
        selection=selection,
        run_config=run_config,
        resources={
            # One thread: the test machine has two shared cores.
            "training_runner": TrainingRunnerResource(env={"OMP_NUM_THREADS": "1"}),
            "s3": S3Resource(),  # unused: the training data is a local folder here
            # The project's IO manager: asset values must be storable as JSON.
            "io_manager": LocalFormatIOManager(base_dir=str(home / "io")),
            "mlflow": MlflowTrackingResource(),  # off; genai_assets_tests/tracking turns it on
        },
        instance=home.instance,
        raise_on_error=False,
    )


def serving_files():
    folder = paths.serving_dir()
    return {
        name: (folder / name).read_bytes()
        for name in (serving.VLLM_CONFIG, serving.STATE)
        if (folder / name).exists()
    }


def check_results(result):
    return {
        e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }


@pytest.fixture(scope="module")
def first_run(home, training_data_dir):
    """The whole graph from scratch: the base model is the champion."""
    result = materialize(home, training_data_dir)
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    return result


def test_first_run_promotes_the_candidate_with_its_manifest(first_run, home):
    report = first_run.output_for_node("eval_report")
    assert report["champion_source"] == "base model (no serving config yet)"
    # Judged on the fixed set, which no training record repeats, with the held-out split beside.
    assert report["eval_set"]["path"] == str(home.eval_set)
    assert report["eval_set"]["version"] == 1 and len(report["eval_set"]["sha256"]) == 64
    assert report["n_eval_records"] == 16
    assert report["candidate"]["perplexity"] < report["base"]["perplexity"] * 0.99
    assert report["held_out"]["candidate"]["perplexity"] is not None
    assert "held-out split of the new training data" in Path(report["report_path"]).read_text()
    assert check_results(first_run)["promotion_gate"].passed
    assert check_results(first_run)["quarantine_rate"].passed
    disjoint = check_results(first_run)["eval_split_disjoint"]
    assert disjoint.passed and disjoint.metadata["leaked_eval_split_turns"].value == 0

    model = first_run.output_for_node("fine_tuned_model")
    assert Path(model["path"]).parent == paths.models_dir()
    manifest = json.loads((Path(model["path"]) / "manifest.json").read_text())
    assert manifest["base_model"] == first_run.output_for_node("base_model")["name_or_path"]
    assert manifest["dataset_hash"] == first_run.output_for_node("training_dataset")["content_hash"]
    assert manifest["hyperparameters"]["max_steps"] == 30
    assert manifest["artifact"] == "merged_model"
    assert "package" in manifest["code_version"]
    assert manifest["weights_sha256"] == weights.folder_sha256(model["path"])
    assert report["candidate_weights_sha256"] == manifest["weights_sha256"]
    losses = [point["loss"] for point in manifest["training_metrics"]["loss_history"]]
    assert losses[-1] < losses[0]
    assert not list(paths.models_dir().glob(".tmp-*"))

    config = yaml.safe_load((paths.serving_dir() / serving.VLLM_CONFIG).read_text())
    assert config == {
        "dtype": "auto",
        "max-model-len": 256,
        "model": model["path"],
        "served-model-name": "skyline-assistant",
        "tensor-parallel-size": 1,
    }
    current = serving.current_entry(paths.serving_dir())
    assert current["manifest_path"] == model["manifest_path"]
    assert current["version"] == 1
    assert current["weights_sha256"] == manifest["weights_sha256"]

    materialization = first_run.asset_materializations_for_node("fine_tuned_model")[0]
    assert materialization.metadata["loss_points_streamed"].value == len(losses)
    assert "eval_loss" in materialization.metadata  # reported by the training process
    curve = materialization.metadata["loss_curve"]
    assert isinstance(curve, dg.TableMetadataValue)
    assert [r.data["step"] for r in curve.records][-1] == 30
    evaluated = first_run.asset_materializations_for_node("eval_report")[0].metadata
    margins = {k: v for k, v in evaluated.items() if k.startswith("gate_margin_")}
    assert margins and all(isinstance(v, dg.FloatMetadataValue) for v in margins.values())
    assert isinstance(evaluated["gate_thresholds"], dg.TextMetadataValue)
    assert isinstance(evaluated["eval_set_version"], dg.TextMetadataValue)
    assert {r.data["model"] for r in evaluated["scores"].records} == {
        "candidate",
        "base",
        "champion",
    }
    dataset = first_run.asset_materializations_for_node("training_dataset")[0].metadata
    assert isinstance(dataset["quarantine"], dg.TableMetadataValue)
    base = first_run.asset_materializations_for_node("base_model")[0]
    assert "locally-built tiny GPT-2" in base.metadata["label"].value


def test_nothing_changed_nothing_trained_and_the_refusal_is_clean(
    home, training_data_dir, first_run
):
    before = serving_files()
    models = sorted(paths.models_dir().iterdir())
    # Same data, base model, hyperparameters and code as the candidate being served.
    result = materialize(home, training_data_dir)
    assert result.success  # a refused promotion is an outcome, not a failed run
    [trained] = result.asset_materializations_for_node("fine_tuned_model")
    assert trained.metadata["trained"].value is False
    assert "nothing changed since run" in trained.metadata["reason"].value
    assert sorted(paths.models_dir().iterdir()) == models  # no new folder: nothing trained
    assert result.output_for_node("fine_tuned_model")["path"] == str(
        first_run.output_for_node("fine_tuned_model")["path"]
    )
    gate = check_results(result)["promotion_gate"]
    assert not gate.passed and gate.severity == dg.AssetCheckSeverity.WARN
    assert "candidate is not the model being served" in gate.description
    [kept] = result.asset_materializations_for_node("serving_config")
    assert kept.metadata["promoted"].value is False and kept.metadata["version"].value == 1
    assert serving_files() == before
    assert not [e for e in result.all_events if e.is_failure]

    # Once more, unchanged: the same models on the same records are not evaluated again.
    again = materialize(home, training_data_dir)
    assert again.success
    [report] = again.asset_materializations_for_node("eval_report")
    assert report.metadata["evaluated"].value is False
    assert again.output_for_node("eval_report")["evaluated_in_run"] == result.run_id
    assert (
        again.output_for_node("eval_report")["candidate"]
        == (result.output_for_node("eval_report")["candidate"])
    )
    assert not check_results(again)["promotion_gate"].passed
    assert serving_files() == before


def test_sabotaged_candidate_fails_the_gate_and_serving_is_unchanged(
    home, training_data_dir, first_run
):
    before = serving_files()
    # A learning rate this large makes full fine-tuning diverge.
    result = materialize(
        home,
        training_data_dir,
        training={"method": "full", "learning_rate": 1000.0, "max_steps": 10},
        selection=DOWNSTREAM,
    )
    assert result.success
    gate = check_results(result)["promotion_gate"]
    assert not gate.passed
    assert "FAILED" in gate.description
    report = result.output_for_node("eval_report")
    assert report["champion_source"] == "serving config version 1"
    assert not report["gate"]["passed"]
    [kept] = result.asset_materializations_for_node("serving_config")
    assert kept.metadata["promoted"].value is False
    assert serving_files() == before


def test_better_candidate_is_promoted_and_rollback_restores_the_previous_config(
    home, training_data_dir, first_run
):
    before = serving_files()
    previous = serving.current_entry(paths.serving_dir())
    # Full fine-tuning learns this data far better than the small LoRA run.
    result = materialize(
        home,
        training_data_dir,
        training={"method": "full", "learning_rate": 2e-3},
        selection=DOWNSTREAM,
    )
    assert result.success
    report = result.output_for_node("eval_report")
    assert report["champion"]["model"] == previous["model_dir"]
    # Generated answers now overlap the references: the text metrics move too.
    assert report["candidate"]["rouge_l"] > report["base"]["rouge_l"]
    promoted = serving.current_entry(paths.serving_dir())
    assert promoted["version"] > previous["version"]
    assert promoted["model_dir"] == result.output_for_node("fine_tuned_model")["path"]

    rollback = jobs.rollback_serving_config.execute_in_process(
        run_config={"ops": {"rollback_serving_config_op": {"config": {"reason": "test"}}}},
        resources={"mlflow": MlflowTrackingResource()},
    )
    assert rollback.success
    assert serving.current_entry(paths.serving_dir()) == previous
    assert serving_files()[serving.VLLM_CONFIG] == before[serving.VLLM_CONFIG]
    rolled_back = serving.read_state(paths.serving_dir())["rolled_back"][-1]
    assert rolled_back["version"] == promoted["version"]
    [event] = rollback.asset_materializations_for_node("rollback_serving_config_op")
    assert event.asset_key == dg.AssetKey("serving_config")


def test_promoted_model_answers_through_transformers_serve(first_run):
    """The folder the serving config names works as an OpenAI-compatible endpoint."""
    model_dir = first_run.output_for_node("serving_config")["model_dir"]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    executable = Path(sys.executable).parent / "transformers"
    command = [str(executable), "serve", model_dir, "--device", "cpu"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused")
        deadline = time.monotonic() + 120
        while True:
            try:
                reply = client.chat.completions.create(
                    model=model_dir,
                    messages=[{"role": "user", "content": "Which command handles quotas?"}],
                    max_tokens=12,
                )
                break
            except openai.APIConnectionError:
                assert server.poll() is None, server.stderr.read().decode()[-2000:]
                assert time.monotonic() < deadline, "transformers serve did not start in 120 s"
                time.sleep(1)
        assert reply.choices[0].message.role == "assistant"
        assert reply.usage.completion_tokens > 0
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_promotion_is_refused_when_the_champion_or_the_weights_changed_after_evaluation(
    home, training_data_dir, first_run
):
    # A new candidate, judged with a permissive gate so that only the checks below can stop it.
    evaluated = materialize(
        home,
        training_data_dir,
        training={"method": "full", "learning_rate": 1e-3},
        selection=["fine_tuned_model", "eval_report"],
        eval_config={"min_relative_improvement": -10.0},
    )
    assert evaluated.success
    report = evaluated.output_for_node("eval_report")
    assert report["gate"]["passed"]
    champion = serving.current_entry(paths.serving_dir())
    assert report["champion_version"] == champion["version"]

    # Another promotion lands between the evaluation and serving_config: compare-and-swap.
    other = serving.promote(paths.serving_dir(), {**champion, "run_id": "concurrent"})
    before = serving_files()
    conflict = materialize(home, training_data_dir, selection=["serving_config"])
    assert not conflict.success
    [failure] = [e for e in conflict.all_events if e.is_step_failure]
    assert f"version {other['version']} now" in failure.step_failure_data.error.message
    assert serving_files() == before
    serving.rollback(paths.serving_dir(), reason="undo the concurrent promotion")

    # The evaluated weights replaced by noise after eval_report: not promoted.
    before = serving_files()
    weights_file = Path(report["candidate_model"]["path"]) / "model.safetensors"
    data = bytearray(weights_file.read_bytes())
    data[-64:] = bytes(64)
    weights_file.write_bytes(bytes(data))
    tampered = materialize(home, training_data_dir, selection=["serving_config"])
    assert not tampered.success
    [failure] = [e for e in tampered.all_events if e.is_step_failure]
    assert "changed" in failure.step_failure_data.error.message
    assert serving_files() == before


def test_candidate_trained_on_garbage_is_refused(
    home, training_data_dir, first_run, tmp_path, garbage_factory, jsonl_writer
):
    garbage = tmp_path / "garbage"
    jsonl_writer(garbage / "garbage.jsonl", garbage_factory())
    before = serving_files()
    # Trained for real on valid records of random words; judged on the fixed set.
    result = materialize(
        home,
        training_data_dir,
        selection=["training_dataset", *DOWNSTREAM],
        source=garbage,
    )
    assert result.success
    report = result.output_for_node("eval_report")
    assert report["champion_source"].startswith("serving config version")
    assert not report["gate"]["passed"]
    assert report["candidate"]["perplexity"] > report["champion"]["perplexity"]
    # On the garbage's own held-out split it looks better: that split does not decide.
    held_out = report["held_out"]
    assert held_out["candidate"]["perplexity"] < held_out["champion"]["perplexity"]
    assert serving_files() == before
