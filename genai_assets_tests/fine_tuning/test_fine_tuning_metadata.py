"""Fine-tuning metadata as a person reads it: tables, margins as numbers, constants as text."""

import math

import dagster as dg

from genai_assets.defs.fine_tuning.shared import (
    gate_metadata,
    loss_curve_table,
    quarantine_table,
    scores_table,
)
from genai_assets.fine_tuning.dataset import QuarantinedRecord
from genai_assets.fine_tuning.gate import ModelGateThresholds, decide_promotion


def test_loss_curve_is_a_table_of_about_25_points_ending_at_the_last_step():
    history = [{"step": float(step), "loss": 3.0 - step / 100} for step in range(1, 101)]
    history[10]["loss"] = None  # not finite during the run
    table = loss_curve_table(history)
    assert isinstance(table, dg.TableMetadataValue)
    assert [c.name for c in table.schema.columns] == ["step", "loss"]
    steps = [r.data["step"] for r in table.records]
    assert 20 <= len(steps) <= 30 and steps[0] == 1 and steps[-1] == 100
    assert all(isinstance(step, int) for step in steps)
    assert table.records[-1].data["loss"] == history[-1]["loss"]


def test_quarantine_is_a_table_with_the_line_as_a_number():
    bad = [QuarantinedRecord("data/a.jsonl", 7, "malformed JSON", "{")]
    table = quarantine_table(bad)
    assert isinstance(table, dg.TableMetadataValue)
    assert table.records[0].data == {
        "source": "data/a.jsonl",
        "line": 7,
        "reason": "malformed JSON",
    }


def test_gate_margins_are_floats_and_thresholds_are_text():
    thresholds = ModelGateThresholds(max_perplexity=60.0, min_rouge_l=0.2)
    metrics = {"perplexity": 50.0, "rouge_l": 0.3, "bleu": 4.0}
    decision = decide_promotion(metrics, {**metrics, "perplexity": 100.0}, thresholds)
    metadata = gate_metadata(decision, thresholds)
    assert metadata["gate_passed"].value is True
    assert isinstance(metadata["gate_thresholds"], dg.TextMetadataValue)
    assert "max_perplexity=60.0" in metadata["gate_thresholds"].value
    margins = {k: v for k, v in metadata.items() if k.startswith("gate_margin_")}
    assert set(margins) == {
        "gate_margin_max_perplexity",
        "gate_margin_min_rouge_l",
        "gate_margin_min_bleu",
        "gate_margin_min_relative_improvement",
    }
    assert all(isinstance(v, dg.FloatMetadataValue) for v in margins.values())
    assert math.isclose(margins["gate_margin_max_perplexity"].value, 10.0)
    diverged = decide_promotion({**metrics, "perplexity": None}, metrics, thresholds)
    assert "gate_margin_max_perplexity" not in gate_metadata(diverged, thresholds)


def test_scores_are_a_table_of_models_by_metric():
    results = {
        "candidate": {"perplexity": 12.5, "rouge_l": 0.4, "bleu": 20.0, "model": "/m/c"},
        "champion": {"perplexity": None, "rouge_l": 0.1, "bleu": 2.0, "model": "/m/b"},
    }
    table = scores_table(results)
    assert [c.name for c in table.schema.columns] == ["model", "perplexity", "rouge_l", "bleu"]
    assert [r.data for r in table.records] == [
        {"model": "candidate", "perplexity": 12.5, "rouge_l": 0.4, "bleu": 20.0},
        {"model": "champion", "perplexity": None, "rouge_l": 0.1, "bleu": 2.0},
    ]
