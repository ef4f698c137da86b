"""Fine-tuning assets: base_model, training_dataset, fine_tuned_model, eval_report, serving_config.

The logic lives in ``genai_assets.finetune`` (no dagster import) and the training
entry point in ``genai_assets.training.sft``; these assets call it, pass
resources and report metadata. Artifacts live under
``genai_assets.finetune.paths.root()``; asset values are JSON dicts that record
folder paths.
"""

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Literal

import dagster as dg
from dagster_aws.s3 import S3Resource
from pydantic import Field

from genai_assets import settings
from genai_assets.defs.automation.policies import GPU_POOL, external_retry_policy
from genai_assets.finetune import dataset as ds
from genai_assets.finetune import evaluation, paths, serving
from genai_assets.finetune.k8s import GpuPodSettings, k8s_op_tags
from genai_assets.finetune.tiny_model import TINY_MODEL_LABEL, ensure_tiny_model
from genai_assets.resources.training_runner import TrainingRunnerResource
from genai_assets.training.sft import MANIFEST, SFTHyperparameters, TrainingJob

GROUP = "fine_tuning"
TINY_LOCAL = "tiny-local"
# The GPU request for users of the k8s_job_executor (the whole step runs in a GPU pod).
# The Pipes pod of the training_runner resource is configured on the resource.
GPU_OP_TAGS = k8s_op_tags(GpuPodSettings())


class BaseModelConfig(dg.Config):
    """Which model fine-tuning starts from."""

    base_model: str = Field(
        default=TINY_LOCAL,
        description="A Hugging Face model id or local folder (loaded with from_pretrained), or "
        f"'{TINY_LOCAL}' to build the tiny GPT-2 model from local text (nothing downloaded).",
    )
    tokenizer_text_dirs: list[str] = Field(
        default_factory=list,
        description=f"'{TINY_LOCAL}' only: folders whose text trains the tokenizer; empty means "
        "the shipped training data and the sample corpus.",
    )
    pretrain_text_dirs: list[str] | None = Field(
        default=None,
        description=f"'{TINY_LOCAL}' only: documents the model reads a few times as a language "
        "model before fine-tuning; None means the sample corpus, [] leaves it random.",
    )


@dg.asset(
    code_version="1",  # bump when what the asset computes changes
    group_name=GROUP,
    kinds={"huggingface"},
    owners=["team:ml-platform"],
    tags={"stage": "model"},
    description="The model fine-tuning starts from. By default a tiny GPT-2-architecture "
    "model built on this machine (tokenizer trained on local text, a few epochs of "
    "next-token training on the sample corpus): a stand-in for a pretrained model, since "
    "nothing can be downloaded here.",
)
def base_model(context: dg.AssetExecutionContext, config: BaseModelConfig) -> dg.Output[dict]:
    """Build (or reuse) the tiny local model, or record the configured model id/folder."""
    if config.base_model != TINY_LOCAL:
        value = {"name_or_path": config.base_model, "locally_built_tiny_model": False}
        value["label"] = f"configured base model {config.base_model}"
        return dg.Output(value, metadata={"name_or_path": config.base_model})
    text_dirs = [Path(d) for d in config.tokenizer_text_dirs] or [
        paths.training_data_dir(),
        settings.SAMPLE_CORPUS_DIR,
    ]
    pretrain_dirs = (
        [settings.SAMPLE_CORPUS_DIR]
        if config.pretrain_text_dirs is None
        else [Path(d) for d in config.pretrain_text_dirs]
    )
    folder = ensure_tiny_model(text_dirs, paths.base_models_dir(), pretrain_folders=pretrain_dirs)
    info = json.loads((folder / "tiny_model.json").read_text())
    context.log.info(f"tiny base model at {folder}: {TINY_MODEL_LABEL}")
    value = {
        "name_or_path": str(folder),
        "locally_built_tiny_model": True,
        "label": TINY_MODEL_LABEL,
    }
    return dg.Output(
        value,
        metadata={
            "name_or_path": dg.MetadataValue.path(str(folder)),
            "label": TINY_MODEL_LABEL,
            "parameters": dg.MetadataValue.int(info["parameters"]),
            "tokenizer_text_files": dg.MetadataValue.int(len(info["tokenizer_text_files"])),
            "pretrain_tokens": dg.MetadataValue.int(info["pretrain_tokens"]),
            "pretrain_steps": dg.MetadataValue.int(info["pretrain_steps"]),
        },
    )


class TrainingDatasetConfig(dg.Config):
    """Where the training data comes from and how it is validated."""

    source: str = Field(
        default="",
        description="A local folder or s3://bucket/prefix of JSONL files; empty means "
        "$GENAI_ASSETS_TRAINING_DATA_DIR (the folder the training-data sensor watches), by "
        "default the shipped genai_assets/data/training.",
    )
    max_tokens: int = Field(
        default=256, description="Records longer than this (in base-model tokens) are quarantined."
    )
    eval_fraction: float = Field(
        default=0.2, description="Share of records held out for evaluation (chosen by hash)."
    )
    min_valid_records: int = Field(
        default=20, description="The run fails when fewer valid records than this remain."
    )


def _source_lines(source: str, s3: S3Resource):
    if source.startswith("s3://"):
        bucket, _, prefix = source.removeprefix("s3://").partition("/")
        return ds.iter_s3_lines(s3.get_client(), bucket, prefix)
    return ds.iter_local_lines(Path(source))


@dg.asset(
    code_version="1",  # bump when what the asset computes changes
    group_name=GROUP,
    kinds={"json"},
    owners=["team:ml-platform"],
    tags={"stage": "data"},
    retry_policy=external_retry_policy(),  # an s3:// source
    description="Validated chat conversations split into train and eval by record hash; bad "
    "lines are quarantined with their line number and reason.",
)
def training_dataset(
    context: dg.AssetExecutionContext,
    config: TrainingDatasetConfig,
    s3: S3Resource,
    base_model: dict,
) -> dg.Output[dict]:
    """Load, validate, deduplicate and split the JSONL sources; write the dataset folder."""
    from transformers import AutoTokenizer

    from genai_assets.finetune.formatting import count_tokens

    source = config.source or str(paths.training_data_dir())
    tokenizer = AutoTokenizer.from_pretrained(base_model["name_or_path"])
    result = ds.validate(
        _source_lines(source, s3),
        count_tokens=lambda messages: count_tokens(tokenizer, messages),
        max_tokens=config.max_tokens,
        eval_fraction=config.eval_fraction,
    )
    content_hash = result.content_hash()
    stats = ds.token_stats(result.records)
    summary = {
        "source": source,
        "content_hash": content_hash,
        "n_train": len(result.train),
        "n_eval": len(result.eval),
        "n_quarantined": len(result.quarantined),
        "quarantine_reasons": result.quarantine_reasons(),
        "token_stats": stats,
        "max_tokens": config.max_tokens,
        "eval_fraction": config.eval_fraction,
        "tokenizer": base_model["name_or_path"],
    }
    folder = ds.write_dataset(result, paths.datasets_dir() / content_hash[:16], summary)
    for item in result.quarantined:
        context.log.warning(f"quarantined {item.source}:{item.line}: {item.reason}")
    if len(result.records) < config.min_valid_records or not result.train or not result.eval:
        raise dg.Failure(
            description=f"training data {source}: only {len(result.records)} valid records "
            f"({len(result.train)} train, {len(result.eval)} eval) after quarantining "
            f"{len(result.quarantined)}; min_valid_records is {config.min_valid_records}. "
            f"Quarantine: {folder / 'quarantine.jsonl'}",
            metadata={"quarantine_reasons": dg.MetadataValue.json(result.quarantine_reasons())},
            allow_retries=False,  # the same data fails the same way
        )
    quarantine_table = "\n".join(
        ["| source | line | reason |", "|---|---|---|"]
        + [f"| {q.source} | {q.line} | {q.reason} |" for q in result.quarantined[:50]]
    )
    return dg.Output(
        {**summary, "path": str(folder)},
        metadata={
            "path": dg.MetadataValue.path(str(folder)),
            "content_hash": content_hash,
            "n_train": dg.MetadataValue.int(len(result.train)),
            "n_eval": dg.MetadataValue.int(len(result.eval)),
            "n_quarantined": dg.MetadataValue.int(len(result.quarantined)),
            "quarantine": dg.MetadataValue.md(quarantine_table),
            "tokens_total": dg.MetadataValue.int(int(stats.get("total", 0))),
            "tokens_mean": dg.MetadataValue.float(float(stats.get("mean", 0.0))),
            "tokens_p95": dg.MetadataValue.int(int(stats.get("p95", 0))),
            "tokens_max": dg.MetadataValue.int(int(stats.get("max", 0))),
        },
    )


class FineTuneConfig(dg.Config):
    """Hyperparameters of the run (the fields of ``SFTHyperparameters``)."""

    method: Literal["lora", "full"] = Field(
        default="lora", description="LoRA adapters through peft, or full fine-tuning."
    )
    merge_adapter: bool = Field(
        default=True, description="LoRA only: merge the adapter into the weights, or keep it."
    )
    learning_rate: float = Field(
        default=5e-3,
        description="Peak learning rate (the default suits the tiny local model; about 2e-4 "
        "suits LoRA on a real model).",
    )
    num_epochs: float = Field(default=4.0, description="Passes over the training split.")
    max_steps: int = Field(default=-1, description="Stop after this many steps (-1: epochs).")
    batch_size: int = Field(default=8, description="Conversations per device and step.")
    gradient_accumulation_steps: int = Field(default=1, description="Steps per optimizer update.")
    max_length: int = Field(default=256, description="Tokens per conversation (cut beyond).")
    weight_decay: float = Field(default=0.0, description="AdamW weight decay.")
    warmup_ratio: float = Field(default=0.0, description="Share of steps with linear warm-up.")
    max_grad_norm: float = Field(default=1.0, description="Gradient clipping norm.")
    lora_r: int = Field(default=16, description="LoRA rank.")
    lora_alpha: int = Field(default=32, description="LoRA scaling alpha.")
    lora_dropout: float = Field(default=0.0, description="LoRA dropout.")
    lora_target_modules: list[str] | None = Field(
        default=["all-linear"],
        description="Modules given adapters: ['all-linear'] (every linear layer), module names "
        "such as [q_proj, v_proj], or None for peft's default for the architecture.",
    )
    seed: int = Field(default=42, description="Seed of initialisation, shuffling and dropout.")
    logging_steps: int = Field(default=5, description="Report the loss every N steps.")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        default="auto", description="auto: bf16 on a GPU that supports it, else fp32."
    )


def _loss_table(history: list[dict], rows: int = 25) -> str:
    stride = max(1, math.ceil(len(history) / rows))
    picked = history[::stride] + ([history[-1]] if (len(history) - 1) % stride else [])
    lines = ["| step | loss |", "|---|---|"]
    lines += [
        f"| {int(h['step'])} | {'not finite' if h['loss'] is None else format(h['loss'], '.4f')} |"
        for h in picked
    ]
    return "\n".join(lines)


@dg.asset(
    code_version="1",  # bump when what the asset computes changes
    group_name=GROUP,
    kinds={"pytorch", "huggingface"},
    owners=["team:ml-platform"],
    tags={"stage": "training"},
    pool=GPU_POOL,
    op_tags=GPU_OP_TAGS,
    description="The base model fine-tuned on the training split (LoRA by default), trained "
    "by `python -m genai_assets.training.sft` under Dagster Pipes: a local subprocess or a "
    "Kubernetes GPU pod (resource training_runner). A folder with a manifest.json.",
)
def fine_tuned_model(
    context: dg.AssetExecutionContext,
    config: FineTuneConfig,
    training_runner: TrainingRunnerResource,
    base_model: dict,
    training_dataset: dict,
) -> dg.Output[dict]:
    """Train through the training runner; the folder appears only when training completed."""
    hyperparameters = SFTHyperparameters.from_dict(config.model_dump())
    output = paths.models_dir() / f"sft-{context.run.run_id[:8]}-{context.retry_number}"
    job = TrainingJob(
        base_model=base_model["name_or_path"],
        dataset_dir=training_dataset["path"],
        output_dir=str(output),
        hyperparameters=hyperparameters,
        dataset_hash=training_dataset["content_hash"],
        base_model_label=base_model["label"],
    )
    invocation = training_runner.run(context, extras={"job": job.to_dict()})
    if not (output / MANIFEST).exists():
        raise dg.Failure(
            f"training finished but {output / MANIFEST} is not visible to this step; on "
            "Kubernetes, mount the artifact volume at $FINE_TUNING_ROOT in the Dagster run pod "
            "and in the training pod (training_runner.artifact_mount_path)"
        )
    manifest = json.loads((output / MANIFEST).read_text())
    history = manifest["training_metrics"]["loss_history"]
    streamed = [m for m in invocation.get_custom_messages() if m.get("kind") == "loss"]
    pipes_metadata = invocation.get_materialize_result().metadata or {}
    metadata = {
        **pipes_metadata,
        "base_model": base_model["name_or_path"],
        "base_model_label": base_model["label"],
        "dataset_hash": training_dataset["content_hash"],
        "method": config.method,
        "loss_curve": dg.MetadataValue.md(_loss_table(history)),
        "loss_points_streamed": dg.MetadataValue.int(len(streamed)),
        "manifest": dg.MetadataValue.json(
            {k: v for k, v in manifest.items() if k != "training_metrics"}
        ),
    }
    for key, point in (("first_loss", history[:1]), ("last_loss", history[-1:])):
        if point and point[0]["loss"] is not None:
            metadata[key] = dg.MetadataValue.float(float(point[0]["loss"]))
    value = {
        "path": str(output),
        "manifest_path": str(output / MANIFEST),
        "artifact": manifest["artifact"],
        "base_model": manifest["base_model"],
        "dataset_hash": manifest["dataset_hash"],
        "training_metrics": {
            k: v for k, v in manifest["training_metrics"].items() if k != "loss_history"
        },
    }
    return dg.Output(value, metadata=metadata)


class EvalReportConfig(dg.Config):
    """How the candidate is evaluated and what the promotion gate requires."""

    max_generation_examples: int = Field(
        default=32, description="Held-out conversations answered for ROUGE-L and BLEU."
    )
    max_new_tokens: int = Field(default=48, description="Generation length per answer.")
    max_perplexity: float | None = Field(
        default=None,
        description="Gate: the candidate's held-out perplexity must not exceed this; None: no "
        "absolute limit (perplexity depends on the tokenizer; e.g. 20 for a real chat model).",
    )
    min_rouge_l: float = Field(default=0.0, description="Gate: minimum ROUGE-L F1 (0-1).")
    min_bleu: float = Field(default=0.0, description="Gate: minimum BLEU (0-100).")
    min_relative_improvement: float = Field(
        default=0.01,
        description="Gate: the candidate's perplexity must be this much lower than the "
        "champion's (0.01 = 1 %; 0 = not worse).",
    )


def _champion(base: dict) -> tuple[str, str]:
    """The model serving now (or the base model before any promotion) and where it came from."""
    entry = serving.current_entry(paths.serving_dir())
    if entry is None:
        return base["name_or_path"], "base model (no serving config yet)"
    if not Path(entry["model_dir"]).exists():
        raise dg.Failure(
            f"the serving config (version {entry['version']}) names {entry['model_dir']}, "
            "which no longer exists; restore it or roll back before evaluating"
        )
    return entry["model_dir"], f"serving config version {entry['version']}"


@dg.asset(
    code_version="1",  # bump when what the asset computes changes
    group_name=GROUP,
    kinds={"pytorch"},
    owners=["team:ml-platform"],
    tags={"stage": "evaluation"},
    description="Held-out perplexity, ROUGE-L and BLEU of the candidate, the base model and "
    "the champion (the model the serving config names), side by side, with the gate verdict.",
)
def eval_report(
    context: dg.AssetExecutionContext,
    config: EvalReportConfig,
    base_model: dict,
    training_dataset: dict,
    fine_tuned_model: dict,
) -> dg.Output[dict]:
    """Evaluate the three models on the eval split and write the report (markdown and JSON)."""
    records = ds.read_split(Path(training_dataset["path"]), "eval")
    settings_ = evaluation.EvalSettings(
        max_new_tokens=config.max_new_tokens,
        max_generation_examples=config.max_generation_examples,
    )
    champion_path, champion_source = _champion(base_model)
    results = {"candidate": evaluation.evaluate_model(fine_tuned_model["path"], records, settings_)}
    results["base"] = evaluation.evaluate_model(base_model["name_or_path"], records, settings_)
    if champion_path == base_model["name_or_path"]:
        results["champion"] = results["base"]
    else:
        results["champion"] = evaluation.evaluate_model(champion_path, records, settings_)
    thresholds = serving.GateThresholds(
        max_perplexity=config.max_perplexity,
        min_rouge_l=config.min_rouge_l,
        min_bleu=config.min_bleu,
        min_relative_improvement=config.min_relative_improvement,
    )
    gate = serving.decide_promotion(results["candidate"], results["champion"], thresholds)
    markdown = evaluation.render_report(results, gate.to_dict())
    markdown += f"\nChampion: {champion_source}. Base model: {base_model['label']}.\n"
    report_dir = paths.reports_dir() / f"{context.run.run_id[:8]}"
    report_dir.mkdir(parents=True, exist_ok=True)
    value = {
        **results,
        "champion_source": champion_source,
        "candidate_model": fine_tuned_model,
        "gate_thresholds": asdict(thresholds),
        "gate": gate.to_dict(),
        "n_eval_records": len(records),
        "report_path": str(report_dir / "eval_report.md"),
    }
    serving.atomic_write_text(report_dir / "eval_report.md", markdown)
    serving.atomic_write_text(
        report_dir / "eval_report.json", json.dumps(value, indent=2, default=str)
    )
    metadata: dict[str, object] = {
        "report": dg.MetadataValue.md(markdown),
        "report_path": dg.MetadataValue.path(value["report_path"]),
        "champion_source": champion_source,
        "gate_passed": dg.MetadataValue.bool(gate.passed),
        "n_eval_records": dg.MetadataValue.int(len(records)),
    }
    for name, result in results.items():
        for metric in ("perplexity", "rouge_l", "bleu"):
            if result[metric] is not None:  # None: a diverged model (and a failed gate)
                metadata[f"{name}_{metric}"] = dg.MetadataValue.float(float(result[metric]))
    return dg.Output(value, metadata=metadata)


class ServingConfigConfig(dg.Config):
    """The vLLM serve settings written for the promoted model."""

    served_model_name: str = Field(
        default="skyline-assistant", description="Model name clients send in requests."
    )
    max_model_len: int | None = Field(
        default=None, description="Context length; None reads it from the model's config."
    )
    dtype: str = Field(default="auto", description="vLLM --dtype.")
    tensor_parallel_size: int = Field(default=1, description="GPUs the model is split across.")


def _max_model_len(model_dir: Path, base_model: str) -> int:
    for folder in (model_dir, Path(base_model)):
        config_file = folder / "config.json"
        if config_file.exists():
            config = json.loads(config_file.read_text())
            for key in ("max_position_embeddings", "n_positions"):
                if key in config:
                    return int(config[key])
    raise ValueError(f"cannot find the context length of {model_dir}; set max_model_len")


@dg.asset(
    code_version="1",  # bump when what the asset computes changes
    group_name=GROUP,
    kinds={"yaml"},
    owners=["team:ml-platform"],
    tags={"stage": "serving"},
    description="The vLLM serve config for the promoted model (written atomically, previous "
    "configs kept in a history; rollback with the rollback_serving_config job). Only "
    "materialized when the promotion_gate check passes.",
)
def serving_config(
    context: dg.AssetExecutionContext, config: ServingConfigConfig, eval_report: dict
) -> dg.Output[dict]:
    """Promote the candidate: write vllm_serve.yaml and the serving state."""
    decision = serving.decide_promotion(
        eval_report["candidate"],
        eval_report["champion"],
        serving.GateThresholds(**eval_report["gate_thresholds"]),
    )
    if not decision.passed:  # also guards runs that select serving_config without its check
        raise dg.Failure(
            "the promotion gate failed; the serving config is unchanged: "
            + "; ".join(r for r in decision.reasons if r.startswith("FAILED"))
        )
    candidate = eval_report["candidate_model"]
    model_dir = Path(candidate["path"])
    vllm = serving.build_vllm_config(
        model_dir=str(model_dir),
        artifact=candidate["artifact"],
        base_model=candidate["base_model"],
        served_model_name=config.served_model_name,
        max_model_len=config.max_model_len or _max_model_len(model_dir, candidate["base_model"]),
        dtype=config.dtype,
        tensor_parallel_size=config.tensor_parallel_size,
    )
    serving_dir = paths.serving_dir()
    entry = serving.promote(
        serving_dir,
        {
            "model_dir": str(model_dir),
            "manifest_path": candidate["manifest_path"],
            "artifact": candidate["artifact"],
            "served_model_name": config.served_model_name,
            "vllm": vllm,
            "metrics": {
                name: {m: eval_report[name][m] for m in ("perplexity", "rouge_l", "bleu")}
                for name in ("candidate", "champion", "base")
            },
            "replaced": eval_report["champion_source"],
            "run_id": context.run.run_id,
        },
    )
    config_path = serving_dir / serving.VLLM_CONFIG
    return dg.Output(
        {
            **entry,
            "config_path": str(config_path),
            "state_path": str(serving_dir / serving.STATE),
        },
        metadata={
            "version": dg.MetadataValue.int(entry["version"]),
            "model_dir": dg.MetadataValue.path(str(model_dir)),
            "config_path": dg.MetadataValue.path(str(config_path)),
            "vllm_serve.yaml": dg.MetadataValue.md(
                f"```yaml\n{config_path.read_text()}```\n"
                f"`vllm serve --config {config_path}`; locally: "
                f"`transformers serve {model_dir} --device cpu`"
            ),
        },
    )
