"""The promotion gate, the vLLM config, atomic writes, history and rollback (pure logic)."""

import json
import logging
import math

import pytest
import yaml

from genai_assets.finetune import rollback as rollback_cli
from genai_assets.finetune import serving
from genai_assets.finetune.serving import GateThresholds, decide_promotion


def metrics(ppl, rouge=0.3, bleu=10.0):
    return {"perplexity": ppl, "rouge_l": rouge, "bleu": bleu}


@pytest.mark.parametrize(
    ("candidate", "champion", "thresholds", "passed", "failed_rule"),
    [
        (metrics(90), metrics(100), GateThresholds(), True, None),
        (
            metrics(99.5),
            metrics(100),
            GateThresholds(min_relative_improvement=0.01),
            False,
            "champion 100.000",
        ),
        (metrics(100), metrics(100), GateThresholds(min_relative_improvement=0.0), True, None),
        (metrics(math.inf), metrics(100), GateThresholds(), False, "finite"),
        (metrics(math.nan), metrics(100), GateThresholds(), False, "finite"),
        (metrics(None), metrics(100), GateThresholds(), False, "finite"),
        (metrics(50), metrics(None), GateThresholds(), True, None),
        (metrics(50), metrics(100), GateThresholds(max_perplexity=40), False, "max_perplexity"),
        (metrics(50, rouge=0.1), metrics(100), GateThresholds(min_rouge_l=0.2), False, "ROUGE-L"),
        (metrics(50, bleu=1.0), metrics(100), GateThresholds(min_bleu=5), False, "BLEU"),
        (metrics(50), metrics(math.inf), GateThresholds(), True, None),
    ],
)
def test_gate(candidate, champion, thresholds, passed, failed_rule):
    decision = decide_promotion(candidate, champion, thresholds)
    assert decision.passed is passed
    assert len(decision.reasons) == 4 + (thresholds.max_perplexity is not None)
    failed = [r for r in decision.reasons if r.startswith("FAILED")]
    if failed_rule is None:
        assert failed == []
    else:
        assert any(failed_rule in r for r in failed), failed


def test_vllm_config_for_merged_model_and_for_kept_adapter():
    merged = serving.build_vllm_config(
        model_dir="/models/sft-1",
        artifact="merged_model",
        base_model="/models/base",
        served_model_name="skyline-assistant",
        max_model_len=2048,
        dtype="bfloat16",
        tensor_parallel_size=2,
    )
    assert merged == {
        "dtype": "bfloat16",
        "max-model-len": 2048,
        "model": "/models/sft-1",
        "served-model-name": "skyline-assistant",
        "tensor-parallel-size": 2,
    }
    adapter = serving.build_vllm_config(
        model_dir="/models/sft-2",
        artifact="lora_adapter",
        base_model="Qwen/Qwen2.5-0.5B-Instruct",
        served_model_name="skyline-assistant",
        max_model_len=4096,
        max_lora_rank=32,
    )
    assert adapter["model"] == "Qwen/Qwen2.5-0.5B-Instruct"
    assert adapter["enable-lora"] is True and adapter["max-lora-rank"] == 32
    assert adapter["lora-modules"] == ["skyline-assistant=/models/sft-2"]
    with pytest.raises(ValueError, match="artifact"):
        serving.build_vllm_config(
            model_dir="x",
            artifact="pickle",
            base_model="b",
            served_model_name="n",
            max_model_len=1,
        )


def entry(name):
    return {"model_dir": f"/models/{name}", "vllm": {"model": f"/models/{name}"}}


def test_promote_keeps_history_and_rollback_restores_the_previous_config(tmp_path):
    assert serving.current_entry(tmp_path) is None
    with pytest.raises(ValueError, match="nothing to roll back"):
        serving.rollback(tmp_path)
    first = serving.promote(tmp_path, entry("a"))
    first_yaml = (tmp_path / serving.VLLM_CONFIG).read_text()
    second = serving.promote(tmp_path, entry("b"))
    assert (first["version"], second["version"]) == (1, 2)
    assert yaml.safe_load((tmp_path / serving.VLLM_CONFIG).read_text()) == {"model": "/models/b"}
    state = serving.read_state(tmp_path)
    assert [e["model_dir"] for e in state["history"]] == ["/models/a"]

    restored = serving.rollback(tmp_path, reason="b answers badly")
    assert restored["model_dir"] == "/models/a"
    assert (tmp_path / serving.VLLM_CONFIG).read_text() == first_yaml
    state = serving.read_state(tmp_path)
    assert state["history"] == []
    assert state["rolled_back"][0]["rollback_reason"] == "b answers badly"
    third = serving.promote(tmp_path, entry("c"))
    assert third["version"] == 3  # versions are never reused after a rollback
    assert sorted(p.name for p in tmp_path.iterdir()) == [serving.STATE, serving.VLLM_CONFIG]


def test_atomic_write_never_leaves_a_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "config.yaml"
    serving.atomic_write_text(target, "old: 1\n")

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(serving.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        serving.atomic_write_text(target, "new: 2\n")
    assert target.read_text() == "old: 1\n"
    assert [p.name for p in tmp_path.iterdir()] == ["config.yaml"]


def test_rollback_command(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    assert rollback_cli.main(["--serving-dir", str(tmp_path)]) == 1
    serving.promote(tmp_path, entry("a"))
    serving.promote(tmp_path, entry("b"))
    assert rollback_cli.main(["--serving-dir", str(tmp_path), "--reason", "test"]) == 0
    state = json.loads((tmp_path / serving.STATE).read_text())
    assert state["current"]["model_dir"] == "/models/a"
    assert "version 1" in caplog.text
