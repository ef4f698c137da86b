"""The training entry point as a plain CLI (no Pipes), the tiny model, evaluation of adapters."""

import dataclasses
import json
import math

import pytest
from transformers import AutoTokenizer

from genai_assets.defs.fine_tuning.configs import FineTuneConfig
from genai_assets.fine_tuning import dataset as ds
from genai_assets.fine_tuning import evaluation, sft, sources, training_job, weights
from genai_assets.fine_tuning.formatting import count_tokens
from genai_assets.fine_tuning.tiny_model import CHATML_TEMPLATE, TINY_MODEL_LABEL, ensure_tiny_model


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory, training_data_dir, tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    result = ds.validate(
        sources.iter_local_lines(training_data_dir),
        lambda messages: count_tokens(tokenizer, messages),
        max_tokens=256,
        eval_fraction=0.2,
    )
    target = tmp_path_factory.mktemp("datasets") / "ds"
    return ds.write_dataset(result, target, {"content_hash": result.content_hash()})


def test_tiny_model_is_cached_labelled_and_has_a_chat_template(
    tmp_path, training_data_dir, tiny_model_dir
):
    again = ensure_tiny_model([training_data_dir], tiny_model_dir.parent)
    assert again == tiny_model_dir
    info = json.loads((tiny_model_dir / "tiny_model.json").read_text())
    assert info["label"] == TINY_MODEL_LABEL
    assert 300_000 < info["parameters"] < 2_000_000
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert tokenizer.chat_template == CHATML_TEMPLATE
    assert tokenizer.eos_token == "<|im_end|>"
    with pytest.raises(ValueError, match="no text files"):
        ensure_tiny_model([tmp_path / "empty"], tmp_path)


def test_dagster_config_mirrors_the_hyperparameters():
    assert set(FineTuneConfig.model_fields) == {
        f.name for f in dataclasses.fields(training_job.SFTHyperparameters)
    }
    defaults = training_job.SFTHyperparameters.from_dict(FineTuneConfig().model_dump())
    assert defaults == training_job.SFTHyperparameters()
    with pytest.raises(ValueError, match="unknown hyperparameters: learning_rte"):
        training_job.SFTHyperparameters.from_dict({"learning_rte": 1e-3})
    with pytest.raises(ValueError, match="learning_rate"):
        training_job.SFTHyperparameters(learning_rate=0)


def test_cli_trains_a_kept_lora_adapter_atomically(tmp_path, tiny_model_dir, dataset_dir, capfd):
    output = tmp_path / "models" / "adapter-run"
    stale = tmp_path / "models" / ".tmp-adapter-run-dead"  # left by an interrupted attempt
    stale.mkdir(parents=True)
    (stale / "model.safetensors").write_bytes(b"half written")
    hyperparameters = {"max_steps": 6, "merge_adapter": False, "logging_steps": 2}
    args = ["--base-model", str(tiny_model_dir), "--dataset", str(dataset_dir)]
    args += ["--output", str(output), "--hyperparameters", json.dumps(hyperparameters)]
    assert sft.main(args) == 0
    printed, _ = capfd.readouterr()
    # The loss of each step is reported once, as a log line: no printed loss dicts, no bars.
    assert "'loss'" not in printed and "it/s" not in printed and "%|" not in printed

    assert sorted(p.name for p in output.parent.iterdir()) == ["adapter-run"]
    assert (output / "adapter_config.json").exists()
    assert (output / "chat_template.jinja").exists() or "chat_template" in json.loads(
        (output / "tokenizer_config.json").read_text()
    )
    manifest = json.loads((output / training_job.MANIFEST).read_text())
    assert manifest["artifact"] == "lora_adapter"
    # The hash covers every file but the manifest, so later steps can tell the weights apart.
    assert manifest["weights_sha256"] == weights.folder_sha256(output)
    assert manifest["hyperparameters"]["max_steps"] == 6
    assert manifest["training_metrics"]["global_step"] == 6
    assert [p["step"] for p in manifest["training_metrics"]["loss_history"]] == [1, 2, 4, 6]

    records = ds.read_split(dataset_dir, "eval")
    settings = evaluation.EvalSettings(max_generation_examples=2, max_new_tokens=8)
    result = evaluation.evaluate_model(str(output), records, settings)
    assert math.isfinite(result["perplexity"]) and result["perplexity"] > 1
    assert result["n_generation_records"] == 2 and 0 <= result["rouge_l"] <= 1

    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        sft.main(args)


def test_text_metrics_reward_matching_answers():
    references = ["Run skyvault snapshot list on the appliance.", "Use port 8443."]
    perfect = evaluation.text_metrics(references, references)
    assert perfect["rouge_l"] == pytest.approx(1.0) and perfect["bleu"] == pytest.approx(100.0)
    wrong = evaluation.text_metrics(["Bananas are yellow.", "No."], references)
    assert wrong["rouge_l"] < 0.2 and wrong["bleu"] < 10


def test_tiny_model_reads_the_corpus_before_it_is_saved(
    tmp_path, training_data_dir, tiny_model_dir
):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    text = "Skyline Vault keeps encrypted snapshots of every vault on port 8443.\n" * 150
    (corpus / "overview.md").write_text(text)
    folder = ensure_tiny_model([training_data_dir], tmp_path / "cache", pretrain_folders=[corpus])
    info = json.loads((folder / "tiny_model.json").read_text())
    assert info["pretrain_steps"] > 0 and info["pretrain_tokens"] >= 256
    assert info["pretrain_final_loss"] < 3.0  # a repeated sentence is learned quickly
    assert folder.name != tiny_model_dir.name  # the same build without reading the corpus


def test_training_fingerprint_changes_with_each_input():
    hp = training_job.SFTHyperparameters()
    base = {"dataset_hash": "d" * 64, "base_model": "m", "hyperparameters": hp}
    same = training_job.training_fingerprint(**base)
    assert same == training_job.training_fingerprint(**base)
    changed = [
        {**base, "dataset_hash": "e" * 64},
        {**base, "base_model": "other"},
        {**base, "hyperparameters": training_job.SFTHyperparameters(learning_rate=1e-3)},
    ]
    assert len({same, *(training_job.training_fingerprint(**c) for c in changed)}) == 4
