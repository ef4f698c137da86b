"""The one training entry point: supervised fine-tuning with transformers (+ peft LoRA).

Run it three ways, with the same code:

* by Dagster, locally, as a subprocess through ``dg.PipesSubprocessClient``;
* by Dagster on Kubernetes, as a GPU pod through dagster-k8s ``PipesK8sClient``;
* by hand, for debugging: ``python -m genai_assets.fine_tuning.sft --job job.json``
  (or ``--base-model M --dataset DIR --output DIR [--hyperparameters JSON]``).

Under Dagster Pipes the job comes from the ``job`` extra, and logs, the loss of
every logged step and the final metrics are reported back to the asset as they
happen. The model is written to a temporary sibling folder and renamed into
place only when complete, with a ``manifest.json`` (base model, dataset hash,
hyperparameters, training metrics, code version, the sha256 of the saved
files); a failed or retried run never leaves a half-written folder where the
next step would read it.
"""

import argparse
import json
import logging
import math
import os
import shutil
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from genai_assets.fine_tuning.dataset import read_split
from genai_assets.fine_tuning.formatting import tokenize_conversation
from genai_assets.fine_tuning.progress import PipesReporter, Reporter, library_logs_to, logger
from genai_assets.fine_tuning.training_job import (
    MANIFEST,
    SFTHyperparameters,
    TrainingJob,
    code_version,
)
from genai_assets.fine_tuning.weights import folder_sha256

# Hyperparameters that TrainingArguments takes under the same name and meaning.
_SAME_NAMED_ARGUMENTS = (
    "gradient_accumulation_steps",
    "max_steps",
    "learning_rate",
    "weight_decay",
    "max_grad_norm",
    "logging_steps",
    "seed",
)


@dataclass(frozen=True)
class _Device:
    """Where training runs and in which precision."""

    cuda: bool
    precision: str
    name: str


def _target_modules(names: tuple[str, ...] | None) -> list[str] | str | None:
    """The target_modules for peft: None (its per-model default), 'all-linear', or names."""
    if not names:
        return None
    return "all-linear" if tuple(names) == ("all-linear",) else list(names)


def _json_safe(values: dict[str, Any]) -> dict[str, Any]:
    """JSON has no NaN or infinity: a diverged run records None."""
    return {
        k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in values.items()
    }


def _device(requested: str) -> _Device:
    import torch

    cuda = torch.cuda.is_available()
    precision = requested
    if requested == "auto":
        precision = "bf16" if cuda and torch.cuda.is_bf16_supported() else "fp32"
    return _Device(cuda, precision, torch.cuda.get_device_name(0) if cuda else "cpu")


def _staging_folder(output: Path, reporter: Reporter) -> Path:
    """A fresh temporary sibling of ``output``, after removing those of interrupted attempts."""
    if output.exists():
        raise FileExistsError(f"output folder {output} already exists; refusing to overwrite")
    output.parent.mkdir(parents=True, exist_ok=True)
    for stale in output.parent.glob(f".tmp-{output.name}-*"):
        reporter.log(f"removing the leftover of an interrupted attempt: {stale}")
        shutil.rmtree(stale)
    return output.parent / f".tmp-{output.name}-{uuid.uuid4().hex[:8]}"


def _tokenized_splits(
    job: TrainingJob, tokenizer: Any, reporter: Reporter
) -> tuple[list[dict], list[dict]]:
    """Train and eval conversations as ids and labels; those with nothing to learn are left out."""
    max_length = job.hyperparameters.max_length

    def tokenized(records: list[dict]) -> list[dict]:
        rows = []
        for record in records:
            example = tokenize_conversation(tokenizer, record["messages"], max_length)
            if example.n_target_tokens:
                rows.append({"input_ids": example.input_ids, "labels": example.labels})
        return rows

    train_records = read_split(Path(job.dataset_dir), "train")
    if not train_records:
        raise ValueError(f"dataset {job.dataset_dir} has no training records")
    train_rows = tokenized(train_records)
    eval_rows = tokenized(read_split(Path(job.dataset_dir), "eval"))
    reporter.log(f"{len(train_rows)} training and {len(eval_rows)} evaluation conversations")
    return train_rows, eval_rows


def _with_adapter(model: Any, hp: SFTHyperparameters, reporter: Reporter) -> tuple[Any, int]:
    """The model to train (with LoRA adapters for ``method: lora``) and its trainable count."""
    if hp.method == "lora":
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(
            task_type="CAUSAL_LM",
            r=hp.lora_r,
            lora_alpha=hp.lora_alpha,
            lora_dropout=hp.lora_dropout,
            target_modules=_target_modules(hp.lora_target_modules),
        )
        model = get_peft_model(model, lora)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    reporter.log(f"{hp.method}: {trainable:,} trainable of {total:,} parameters")
    return model, trainable


def _trainer(
    model: Any,
    tokenizer: Any,
    hp: SFTHyperparameters,
    device: _Device,
    scratch: Path,
    rows: tuple[list[dict], list[dict]],
    on_step: Any,
) -> Any:
    """A transformers Trainer that reports each logged step to ``on_step`` and prints nothing."""
    from transformers import (
        DataCollatorForSeq2Seq,
        PrinterCallback,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    class LossCallback(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: D102
            if logs and "loss" in logs:
                values = {"step": float(state.global_step), "loss": float(logs["loss"])}
                values.update(
                    {k: float(logs[k]) for k in ("learning_rate", "grad_norm") if k in logs}
                )
                on_step(values)

    args = TrainingArguments(
        output_dir=str(scratch),
        **{name: getattr(hp, name) for name in _SAME_NAMED_ARGUMENTS},
        per_device_train_batch_size=hp.batch_size,
        per_device_eval_batch_size=hp.batch_size,
        num_train_epochs=hp.num_epochs,
        warmup_steps=hp.warmup_ratio,  # a float in [0, 1) is a ratio of all steps
        logging_nan_inf_filter=False,  # a diverging run must show its nan/inf losses
        logging_first_step=True,
        save_strategy="no",
        eval_strategy="no",
        report_to=[],
        data_seed=hp.seed,
        bf16=device.precision == "bf16",
        fp16=device.precision == "fp16",
        use_cpu=not device.cuda,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    train_rows, eval_rows = rows
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train_rows,
        eval_dataset=eval_rows or None,
        data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100),
        callbacks=[LossCallback()],
    )
    # With tqdm off the Trainer prints every loss dict to stdout; LossCallback already
    # reports each one as a structured line, so the printed copy would only repeat it.
    trainer.remove_callback(PrinterCallback)
    return trainer


def _fit(trainer: Any, has_eval: bool, history: list[dict], reporter: Reporter) -> dict[str, Any]:
    """Train, then score the eval split; the metrics with the loss history, JSON-safe."""
    started = time.monotonic()
    result = trainer.train()
    metrics: dict[str, Any] = {
        "train_loss": float(result.training_loss),
        "global_step": int(result.global_step),
        "train_runtime_s": round(time.monotonic() - started, 3),
    }
    if has_eval:
        eval_loss = float(trainer.evaluate()["eval_loss"])
        metrics["eval_loss"] = eval_loss
        metrics["eval_perplexity"] = math.exp(eval_loss) if eval_loss < 50 else math.inf
    metrics = _json_safe(metrics)
    reporter.log(f"training done: {json.dumps(metrics)}")
    metrics["loss_history"] = [_json_safe(point) for point in history]
    return metrics


def _trained_model(trainer: Any, hp: SFTHyperparameters) -> tuple[Any, str]:
    """The model to save and its artifact kind: merged, a kept adapter, or fully trained."""
    if hp.method != "lora":
        return trainer.model, "full_model"
    if hp.merge_adapter:
        return trainer.model.merge_and_unload(), "merged_model"
    return trainer.model, "lora_adapter"


def train(job: TrainingJob, reporter: Reporter | None = None) -> dict[str, Any]:
    """Fine-tune ``job.base_model`` on ``job.dataset_dir`` and write ``job.output_dir``.

    Returns:
        The manifest written to ``output_dir/manifest.json``.

    Raises:
        FileExistsError: when ``output_dir`` already holds a finished model.
        ValueError: when the dataset has no training records.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed

    reporter = reporter or Reporter()
    hp = job.hyperparameters
    output = Path(job.output_dir)
    staging = _staging_folder(output, reporter)

    set_seed(hp.seed)
    device = _device(hp.precision)
    reporter.log(f"loading base model {job.base_model} on {device.name} ({device.precision})")
    tokenizer = AutoTokenizer.from_pretrained(job.base_model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(job.base_model, dtype=torch.float32)
    rows = _tokenized_splits(job, tokenizer, reporter)
    model, trainable = _with_adapter(model, hp, reporter)

    history: list[dict[str, float]] = []

    def on_step(values: dict[str, float]) -> None:
        history.append(values)
        reporter.step(values)

    trainer = _trainer(model, tokenizer, hp, device, staging / "_trainer", rows, on_step)
    try:
        metrics = _fit(trainer, bool(rows[1]), history, reporter)
        model, artifact = _trained_model(trainer, hp)
        shutil.rmtree(staging / "_trainer", ignore_errors=True)
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        manifest = {
            # What eval_report checks before evaluating and serving_config before promoting.
            "weights_sha256": folder_sha256(staging),
            "training_fingerprint": job.fingerprint,
            "model_dir": str(output),
            "artifact": artifact,
            "base_model": job.base_model,
            "base_model_label": job.base_model_label,
            "dataset_dir": job.dataset_dir,
            "dataset_hash": job.dataset_hash,
            "hyperparameters": asdict(hp),
            "training_metrics": metrics,
            "code_version": code_version(),
            "device": device.name,
            "precision": device.precision,
            "trainable_parameters": trainable,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, allow_nan=False))
        os.replace(staging, output)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    reporter.finished(manifest)
    return manifest


def _parse_args(argv: list[str]) -> tuple[TrainingJob, str]:
    parser = argparse.ArgumentParser(
        prog="python -m genai_assets.fine_tuning.sft", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--job", type=Path, help="a TrainingJob as JSON (overrides the rest)")
    parser.add_argument("--base-model", help="Hugging Face model id or local folder")
    parser.add_argument("--dataset", help="folder with train.jsonl and eval.jsonl")
    parser.add_argument("--output", help="folder to create for the fine-tuned model")
    parser.add_argument(
        "--hyperparameters", default="{}", help="JSON object, e.g. '{\"learning_rate\": 1e-3}'"
    )
    parser.add_argument(
        "--library-log-level",
        default="WARNING",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="the least severe transformers/peft/warnings record to show",
    )
    args = parser.parse_args(argv)
    if args.job:
        return TrainingJob.from_dict(json.loads(args.job.read_text())), args.library_log_level
    if not (args.base_model and args.dataset and args.output):
        parser.error("give --job, or all of --base-model, --dataset and --output")
    job = TrainingJob(
        base_model=args.base_model,
        dataset_dir=args.dataset,
        output_dir=args.output,
        hyperparameters=SFTHyperparameters.from_dict(json.loads(args.hyperparameters)),
    )
    return job, args.library_log_level


def main(argv: list[str] | None = None) -> int:
    """Entry point: under Dagster Pipes when launched by Dagster, else a plain CLI."""
    from dagster_pipes import PipesEnvVarParamsLoader, open_dagster_pipes

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if PipesEnvVarParamsLoader().is_dagster_pipes_process():
        with open_dagster_pipes() as pipes:
            job = TrainingJob.from_dict(pipes.get_extra("job"))
            level = pipes.extras.get("library_log_level", "WARNING")
            with library_logs_to(pipes.log, logging.getLevelName(level)):
                train(job, PipesReporter(pipes))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    job, level = _parse_args(sys.argv[1:] if argv is None else argv)
    with library_logs_to(logger, logging.getLevelName(level)):
        manifest = train(job)
    logger.info("model written to %s", manifest["model_dir"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
