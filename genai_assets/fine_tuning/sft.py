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
import hashlib
import json
import logging
import math
import os
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Literal

from genai_assets.fine_tuning.dataset import read_split
from genai_assets.fine_tuning.formatting import tokenize_conversation
from genai_assets.fine_tuning.weights import folder_sha256

logger = logging.getLogger("genai_assets.fine_tuning.sft")

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class SFTHyperparameters:
    """Hyperparameters of one fine-tuning run (JSON-serialisable)."""

    method: Literal["lora", "full"] = "lora"
    merge_adapter: bool = True
    learning_rate: float = 5e-3  # tuned for the tiny local model; ~2e-4 suits real LoRA runs
    num_epochs: float = 4.0
    max_steps: int = -1
    batch_size: int = 8
    gradient_accumulation_steps: int = 1
    max_length: int = 256
    weight_decay: float = 0.0
    warmup_ratio: float = 0.0
    max_grad_norm: float = 1.0
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    lora_target_modules: tuple[str, ...] | None = ("all-linear",)
    seed: int = 42
    logging_steps: int = 5
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"

    def __post_init__(self) -> None:
        """Reject values that would make the run meaningless, naming the field."""
        if self.method not in ("lora", "full"):
            raise ValueError(f"method must be 'lora' or 'full', got {self.method!r}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.batch_size < 1 or self.max_length < 8:
            raise ValueError("batch_size must be >= 1 and max_length >= 8")
        if self.precision not in ("auto", "fp32", "bf16", "fp16"):
            raise ValueError(f"precision must be auto, fp32, bf16 or fp16, got {self.precision!r}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "SFTHyperparameters":
        """Build from a dict, refusing unknown keys (a typo must not be ignored)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown hyperparameters: {', '.join(unknown)}")
        values = dict(values)
        if values.get("lora_target_modules") is not None:
            values["lora_target_modules"] = tuple(values["lora_target_modules"])
        return cls(**values)


@dataclass(frozen=True)
class TrainingJob:
    """What to train, on what, and where the result goes."""

    base_model: str
    dataset_dir: str
    output_dir: str
    hyperparameters: SFTHyperparameters = field(default_factory=SFTHyperparameters)
    dataset_hash: str = ""
    base_model_label: str = ""
    fingerprint: str = ""  # training_fingerprint() of the inputs, recorded in the manifest

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form, as sent through Pipes extras."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainingJob":
        """Inverse of :meth:`to_dict`."""
        values = dict(values)
        values["hyperparameters"] = SFTHyperparameters.from_dict(
            values.get("hyperparameters") or {}
        )
        return cls(**values)


class Reporter:
    """Where progress goes: the Python log by default, Dagster Pipes when run by Dagster."""

    def log(self, message: str) -> None:
        """A line of progress."""
        logger.info(message)

    def step(self, values: dict[str, float]) -> None:
        """Loss (and learning rate) at one logged step."""
        logger.info("step %s", json.dumps(values))

    def finished(self, manifest: dict[str, Any]) -> None:
        """The run completed; ``manifest`` is what was written next to the model."""
        logger.info("finished: %s", json.dumps(manifest["training_metrics"]))


class PipesReporter(Reporter):
    """Reports through an open Dagster Pipes context."""

    def __init__(self, pipes: Any) -> None:
        self._pipes = pipes

    def log(self, message: str) -> None:
        """Sent to the Dagster run's log."""
        self._pipes.log.info(message)

    def step(self, values: dict[str, float]) -> None:
        """A log line per logged step and a custom message the asset collects as a curve."""
        self._pipes.log.info(f"step {int(values['step'])}: " + json.dumps(values))
        self._pipes.report_custom_message({"kind": "loss", **values})

    def finished(self, manifest: dict[str, Any]) -> None:
        """Final metrics and the model folder, as the asset's materialization metadata."""
        metrics = manifest["training_metrics"]
        meta: dict[str, Any] = {
            key: {"raw_value": value, "type": "float"}
            for key, value in metrics.items()
            if isinstance(value, float) and key != "loss_history"
        }
        meta["global_step"] = {"raw_value": int(metrics["global_step"]), "type": "int"}
        meta["model_dir"] = {"raw_value": manifest["model_dir"], "type": "path"}
        meta["artifact"] = {"raw_value": manifest["artifact"], "type": "text"}
        meta["device"] = {"raw_value": manifest["device"], "type": "text"}
        self._pipes.report_asset_materialization(metadata=meta)


def code_version() -> dict[str, str]:
    """The package version and, when the code runs from a git checkout, the commit sha."""
    version: dict[str, str] = {}
    try:
        version["package"] = importlib_metadata.version("genai_assets")
    except importlib_metadata.PackageNotFoundError:
        version["package"] = "not installed"
    root = Path(__file__).resolve().parent.parent.parent
    if (root / ".git").exists():
        result = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode == 0:
            version["git_sha"] = result.stdout.strip()
            dirty = subprocess.run(
                ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True,
                text=True,
                check=False,
            )
            version["git_dirty"] = str(bool(dirty.stdout.strip())).lower()
    return version


# The code that decides what training computes; a change to it is a reason to train again.
TRAINING_CODE = (
    Path(__file__),
    Path(__file__).resolve().parent / "formatting.py",
)


def training_code_sha256() -> str:
    """sha256 of the training code (this module and the chat formatting it trains on)."""
    digest = hashlib.sha256()
    for path in TRAINING_CODE:
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def training_fingerprint(
    *, dataset_hash: str, base_model: str, hyperparameters: SFTHyperparameters
) -> str:
    """The identity of a training run's inputs: data, base model, config and code.

    ``base_model`` is a Hugging Face id, or for a local folder its content hash
    (:func:`genai_assets.fine_tuning.weights.folder_sha256`), so a rebuilt base
    model with other weights counts as a change. Two runs with the same
    fingerprint compute the same model (training is seeded), so the second need
    not run.
    """
    inputs = {
        "dataset_hash": dataset_hash,
        "base_model": base_model,
        "hyperparameters": asdict(hyperparameters),
        "training_code": training_code_sha256(),
        "package": code_version()["package"],
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode("utf-8")).hexdigest()


def _target_modules(names: tuple[str, ...] | None) -> list[str] | str | None:
    """The target_modules for peft: None (its per-model default), 'all-linear', or names."""
    if not names:
        return None
    return "all-linear" if tuple(names) == ("all-linear",) else list(names)


def _finite_or_not_float(value: object) -> bool:
    return not isinstance(value, float) or math.isfinite(value)


def _precision(requested: str, cuda: bool) -> str:
    import torch

    if requested != "auto":
        return requested
    if cuda and torch.cuda.is_bf16_supported():
        return "bf16"
    return "fp32"


def train(job: TrainingJob, reporter: Reporter | None = None) -> dict[str, Any]:
    """Fine-tune ``job.base_model`` on ``job.dataset_dir`` and write ``job.output_dir``.

    Returns:
        The manifest written to ``output_dir/manifest.json``.

    Raises:
        FileExistsError: when ``output_dir`` already holds a finished model.
        ValueError: when the dataset has no training records.
    """
    import torch
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        DataCollatorForSeq2Seq,
        Trainer,
        TrainerCallback,
        TrainingArguments,
        set_seed,
    )

    reporter = reporter or Reporter()
    hp = job.hyperparameters
    output = Path(job.output_dir)
    if output.exists():
        raise FileExistsError(f"output folder {output} already exists; refusing to overwrite")
    output.parent.mkdir(parents=True, exist_ok=True)
    for stale in output.parent.glob(f".tmp-{output.name}-*"):
        reporter.log(f"removing the leftover of an interrupted attempt: {stale}")
        shutil.rmtree(stale)
    staging = output.parent / f".tmp-{output.name}-{uuid.uuid4().hex[:8]}"

    set_seed(hp.seed)
    cuda = torch.cuda.is_available()
    precision = _precision(hp.precision, cuda)
    device = torch.cuda.get_device_name(0) if cuda else "cpu"
    reporter.log(f"loading base model {job.base_model} on {device} ({precision})")
    tokenizer = AutoTokenizer.from_pretrained(job.base_model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(job.base_model, dtype=torch.float32)

    train_records = read_split(Path(job.dataset_dir), "train")
    eval_records = read_split(Path(job.dataset_dir), "eval")
    if not train_records:
        raise ValueError(f"dataset {job.dataset_dir} has no training records")

    def tokenized(records: list[dict]) -> list[dict]:
        rows = []
        for record in records:
            example = tokenize_conversation(tokenizer, record["messages"], hp.max_length)
            if example.n_target_tokens:
                rows.append({"input_ids": example.input_ids, "labels": example.labels})
        return rows

    train_rows, eval_rows = tokenized(train_records), tokenized(eval_records)
    reporter.log(f"{len(train_rows)} training and {len(eval_rows)} evaluation conversations")

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

    history: list[dict[str, float]] = []

    class LossCallback(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: D102
            if logs and "loss" in logs:
                values = {"step": float(state.global_step), "loss": float(logs["loss"])}
                if "learning_rate" in logs:
                    values["learning_rate"] = float(logs["learning_rate"])
                if "grad_norm" in logs:
                    values["grad_norm"] = float(logs["grad_norm"])
                history.append(values)
                reporter.step(values)

    args = TrainingArguments(
        output_dir=str(staging / "_trainer"),
        per_device_train_batch_size=hp.batch_size,
        per_device_eval_batch_size=hp.batch_size,
        gradient_accumulation_steps=hp.gradient_accumulation_steps,
        num_train_epochs=hp.num_epochs,
        max_steps=hp.max_steps,
        learning_rate=hp.learning_rate,
        weight_decay=hp.weight_decay,
        warmup_steps=hp.warmup_ratio,  # a float in [0, 1) is a ratio of all steps
        logging_nan_inf_filter=False,  # a diverging run must show its nan/inf losses
        max_grad_norm=hp.max_grad_norm,
        logging_steps=hp.logging_steps,
        logging_first_step=True,
        save_strategy="no",
        eval_strategy="no",
        report_to=[],
        seed=hp.seed,
        data_seed=hp.seed,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=not cuda,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train_rows,
        eval_dataset=eval_rows or None,
        data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100),
        callbacks=[LossCallback()],
    )
    started = time.monotonic()
    try:
        result = trainer.train()
        metrics: dict[str, Any] = {
            "train_loss": float(result.training_loss),
            "global_step": int(result.global_step),
            "train_runtime_s": round(time.monotonic() - started, 3),
        }
        if eval_rows:
            eval_loss = float(trainer.evaluate()["eval_loss"])
            metrics["eval_loss"] = eval_loss
            metrics["eval_perplexity"] = math.exp(eval_loss) if eval_loss < 50 else math.inf
        # JSON has no NaN or infinity: a diverged run records None.
        metrics = {k: v if _finite_or_not_float(v) else None for k, v in metrics.items()}
        metrics["loss_history"] = [
            {k: v if _finite_or_not_float(v) else None for k, v in point.items()}
            for point in history
        ]
        summary = {key: value for key, value in metrics.items() if key != "loss_history"}
        reporter.log(f"training done: {json.dumps(summary)}")

        artifact = "full_model"
        if hp.method == "lora":
            if hp.merge_adapter:
                model = trainer.model.merge_and_unload()
                artifact = "merged_model"
            else:
                model = trainer.model
                artifact = "lora_adapter"
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
            "device": device,
            "precision": precision,
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


def _parse_args(argv: list[str]) -> TrainingJob:
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
    args = parser.parse_args(argv)
    if args.job:
        return TrainingJob.from_dict(json.loads(args.job.read_text()))
    if not (args.base_model and args.dataset and args.output):
        parser.error("give --job, or all of --base-model, --dataset and --output")
    return TrainingJob(
        base_model=args.base_model,
        dataset_dir=args.dataset,
        output_dir=args.output,
        hyperparameters=SFTHyperparameters.from_dict(json.loads(args.hyperparameters)),
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point: under Dagster Pipes when launched by Dagster, else a plain CLI."""
    from dagster_pipes import PipesEnvVarParamsLoader, open_dagster_pipes

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if PipesEnvVarParamsLoader().is_dagster_pipes_process():
        with open_dagster_pipes() as pipes:
            job = TrainingJob.from_dict(pipes.get_extra("job"))
            train(job, PipesReporter(pipes))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    job = _parse_args(sys.argv[1:] if argv is None else argv)
    manifest = train(job)
    logger.info("model written to %s", manifest["model_dir"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
