"""The vLLM config, atomic writes, history and rollback of the serving folder (pure logic)."""

import json
import logging
import multiprocessing
import threading
from pathlib import Path

import pytest
import yaml

from genai_assets.fine_tuning import rollback as rollback_cli
from genai_assets.fine_tuning import serving, weights


def vllm_config(artifact, model_dir, **settings):
    return serving.build_vllm_config(
        model_dir=model_dir,
        artifact=artifact,
        served_model_name="skyline-assistant",
        **{"base_model": "/models/base", "max_model_len": 2048, **settings},
    )


def test_vllm_config_for_merged_model_and_for_kept_adapter():
    merged = vllm_config("merged_model", "/models/sft-1", dtype="bfloat16", tensor_parallel_size=2)
    assert merged == {
        "dtype": "bfloat16",
        "max-model-len": 2048,
        "model": "/models/sft-1",
        "served-model-name": "skyline-assistant",
        "tensor-parallel-size": 2,
    }
    adapter = vllm_config(
        "lora_adapter", "/models/sft-2", base_model="Qwen/Qwen2.5-0.5B-Instruct", max_lora_rank=32
    )
    assert adapter["model"] == "Qwen/Qwen2.5-0.5B-Instruct"
    assert adapter["enable-lora"] is True and adapter["max-lora-rank"] == 32
    assert adapter["lora-modules"] == ["skyline-assistant=/models/sft-2"]
    with pytest.raises(ValueError, match="artifact"):
        vllm_config("pickle", "x")


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
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [serving.LOCK, serving.CURRENT, serving.GENERATIONS, serving.STATE, serving.VLLM_CONFIG]
    )


def test_both_serving_files_change_in_one_step(tmp_path, monkeypatch):
    serving.promote(tmp_path, entry("a"))
    before = {n: (tmp_path / n).read_bytes() for n in (serving.STATE, serving.VLLM_CONFIG)}
    real = serving.atomic_write_text

    def crash_on_the_second_file(path, text):
        if path.name == serving.VLLM_CONFIG:
            raise OSError("killed between the two files")
        real(path, text)

    monkeypatch.setattr(serving, "atomic_write_text", crash_on_the_second_file)
    with pytest.raises(OSError, match="killed"):
        serving.promote(tmp_path, entry("b"))
    # The state was written, but not committed: readers still see the old pair.
    assert {n: (tmp_path / n).read_bytes() for n in before} == before
    monkeypatch.setattr(serving, "atomic_write_text", real)
    assert serving.promote(tmp_path, entry("b"))["version"] == 2
    assert yaml.safe_load((tmp_path / serving.VLLM_CONFIG).read_text()) == {"model": "/models/b"}


def test_promotion_is_a_compare_and_swap_on_the_champion(tmp_path):
    serving.promote(tmp_path, entry("a"), expected_version=None)
    serving.promote(tmp_path, entry("b"), expected_version=1)
    before = (tmp_path / serving.STATE).read_bytes()
    # A candidate judged against version 1 while version 2 is serving must not replace it.
    with pytest.raises(serving.ServingConflict, match="version 2 now.*against version 1"):
        serving.promote(tmp_path, entry("c"), expected_version=1)
    with pytest.raises(serving.ServingConflict):
        serving.promote(tmp_path, entry("c"), expected_version=None)
    assert (tmp_path / serving.STATE).read_bytes() == before


def test_promotion_waits_for_the_serving_lock(tmp_path):
    done = threading.Event()
    with serving.serving_lock(tmp_path):
        worker = threading.Thread(
            target=lambda: (serving.promote(tmp_path, entry("a")), done.set())
        )
        worker.start()
        assert not done.wait(0.5), "promote did not wait for the lock holder"
    worker.join(timeout=10)
    assert done.is_set() and serving.current_entry(tmp_path)["version"] == 1


def _promote_many(folder: str, name: str, count: int) -> None:
    for index in range(count):
        serving.promote(Path(folder), entry(f"{name}-{index}"))
        if index % 3 == 2:
            serving.rollback(Path(folder), reason=name)


def test_concurrent_promotions_and_rollbacks_lose_no_update(tmp_path):
    context = multiprocessing.get_context("fork")
    workers = [
        context.Process(target=_promote_many, args=(str(tmp_path), f"w{n}", 9)) for n in range(3)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    state = serving.read_state(tmp_path)
    entries = [state["current"], *state["history"], *state["rolled_back"]]
    # 27 promotions, 9 rollbacks: every entry is somewhere, none twice.
    assert sorted(e["version"] for e in entries) == list(range(1, 28))
    assert len(state["rolled_back"]) == 9


def test_weights_hash_ties_a_folder_to_its_recorded_files(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"weights")
    (folder / "config.json").write_text("{}")
    recorded = weights.folder_sha256(folder)
    (folder / "manifest.json").write_text(json.dumps({"weights_sha256": recorded}))
    assert weights.verify(folder, recorded, "the manifest") == recorded  # manifest not hashed
    (folder / "model.safetensors").write_bytes(b"weightz")
    with pytest.raises(weights.WeightsMismatch, match="the manifest recorded"):
        weights.verify(folder, recorded, "the manifest")


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


def test_a_serving_folder_from_before_generations_is_taken_over(tmp_path):
    """Plain serving_state.json and vllm_serve.yaml files, as earlier versions wrote them."""
    old_state = {"current": entry("a") | {"version": 1}, "history": [], "rolled_back": []}
    (tmp_path / serving.STATE).write_text(json.dumps(old_state))
    (tmp_path / serving.VLLM_CONFIG).write_text("model: /models/a\n")
    promoted = serving.promote(tmp_path, entry("b"), expected_version=1)
    assert promoted["version"] == 2
    assert (tmp_path / serving.STATE).is_symlink() and (tmp_path / serving.VLLM_CONFIG).is_symlink()
    assert serving.rollback(tmp_path)["model_dir"] == "/models/a"
    assert yaml.safe_load((tmp_path / serving.VLLM_CONFIG).read_text()) == {"model": "/models/a"}
