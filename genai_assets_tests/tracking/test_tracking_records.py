"""What the assets record in MLflow, built from their values (pure functions, no server)."""

import json

import pytest

from genai_assets.tracking import mlflow_records
from genai_assets.tracking.mlflow_tracker import ModelVersionRef

MANIFEST = {
    "artifact": "merged_lora",
    "training_metrics": {
        "train_loss": 2.5,
        "eval_perplexity": None,  # diverged: JSON has no infinity
        "global_step": 3,
        "train_runtime_s": 12.5,
        "loss_history": [
            {"step": 1, "loss": 4.0, "learning_rate": 0.005},
            {"step": 2, "loss": 3.0, "learning_rate": 0.004},
            {"step": 3, "loss": None, "learning_rate": 0.003},
        ],
    },
}
DATASET = {"content_hash": "abc", "n_train": 64, "n_eval": 16, "n_quarantined": 2, "source": "d"}
BASE = {"name_or_path": "/models/base", "label": "tiny"}


def test_fine_tuning_record_has_the_loss_curve_step_by_step_and_the_splits(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps(MANIFEST))
    (tmp_path / "config.json").write_text("{}")
    record = mlflow_records.fine_tuning_record(
        "run",
        {"dagster.run_id": "r1"},
        {"learning_rate": 0.005},
        BASE,
        DATASET,
        MANIFEST,
        tmp_path / "manifest.json",
    )
    assert record.histories == {
        "loss": [(1, 4.0), (2, 3.0), (3, None)],
        "learning_rate": [(1, 0.005), (2, 0.004), (3, 0.003)],
    }
    assert record.metrics == {
        "train_loss": 2.5,
        "eval_perplexity": None,
        "global_step": 3.0,
        "train_runtime_s": 12.5,
    }
    assert record.duration_s == 12.5  # the MLflow run spans the training, not the logging
    assert (record.params["n_train"], record.params["n_eval"]) == (64, 16)
    assert record.params["dataset_hash"] == record.tags["dataset_hash"] == "abc"
    assert record.artifacts == {"model": [tmp_path / "manifest.json", tmp_path / "config.json"]}


@pytest.mark.parametrize("passed", [True, False])
def test_evaluation_metrics_name_each_model_and_the_gate(passed):
    report = {
        role: {"perplexity": p, "rouge_l": 0.1, "bleu": 1.0}
        for role, p in (("candidate", 3.0), ("base", 9.0), ("champion", None))
    }
    report |= {"gate": {"passed": passed}, "n_eval_records": 16}
    metrics = mlflow_records.evaluation_metrics(report)
    assert metrics["candidate_perplexity"] == 3.0
    assert metrics["champion_perplexity"] is None
    assert metrics["gate_passed"] == (1.0 if passed else 0.0)
    assert len(metrics) == 3 * 3 + 2


def test_rag_quality_records_leave_out_metrics_that_were_not_computed():
    [record] = mlflow_records.rag_quality_records(
        {"dagster.run_id": "r"},
        {"k": 5},
        [("candidate", "c1", "m", {"mrr": 0.5, "faithfulness": None})],
    )
    assert record.metrics == {"mrr": 0.5}
    assert record.tags == {"dagster.run_id": "r", "role": "candidate", "collection": "c1"}


def test_model_version_ref_round_trips_and_none_means_not_registered():
    ref = ModelVersionRef("m", "3", "run")
    assert ModelVersionRef.from_dict(ref.to_dict()) == ref
    assert ModelVersionRef.from_dict(None) is None
