"""Fine-tuning assets: base_model, training_dataset, fine_tuned_model, eval_report, serving_config.

The logic lives in ``genai_assets.fine_tuning`` (no dagster import) and the training
entry point in ``genai_assets.fine_tuning.sft``; these assets call it, pass
resources and report metadata. Artifacts live under
``genai_assets.fine_tuning.paths.root()``; asset values are JSON dicts that record
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
from genai_assets.fine_tuning import dataset as ds
from genai_assets.fine_tuning import eval_set, evaluation, paths, serving, weights
from genai_assets.fine_tuning.k8s import GpuPodSettings, k8s_op_tags
from genai_assets.fine_tuning.sft import (
    MANIFEST,
    SFTHyperparameters,
    TrainingJob,
    training_fingerprint,
)
from genai_assets.fine_tuning.tiny_model import TINY_MODEL_LABEL, ensure_tiny_model
from genai_assets.resources.mlflow_tracking import MlflowTrackingResource
from genai_assets.resources.training_runner import TrainingRunnerResource

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
    eval_set: str = Field(
        default="",
        description="The fixed, versioned evaluation set the promotion gate judges on (a JSONL "
        "file beside its <name>.json manifest); empty means the shipped "
        "genai_assets/data/eval_sets/skyline_v1.jsonl. Training records that repeat one of its "
        "questions or answers are quarantined.",
    )


def _load_eval_set(path: str) -> eval_set.EvalSet:
    try:
        return eval_set.load_eval_set(path)
    except (OSError, ValueError) as error:
        raise dg.Failure(
            description=f"fixed evaluation set {path}: {error}",
            allow_retries=False,  # a missing or changed file stays so on retry
        ) from error


def _source_lines(source: str, s3: S3Resource):
    if source.startswith("s3://"):
        bucket, _, prefix = source.removeprefix("s3://").partition("/")
        return ds.iter_s3_lines(s3.get_client(), bucket, prefix)
    return ds.iter_local_lines(Path(source))


@dg.asset(
    code_version="2",  # bump when what the asset computes changes
    group_name=GROUP,
    kinds={"json"},
    owners=["team:ml-platform"],
    tags={"stage": "data"},
    retry_policy=external_retry_policy(),  # an s3:// source
    description="Validated chat conversations split into train and eval by group (records "
    "sharing a question or an answer stay on one side); bad lines, and records that repeat "
    "the fixed evaluation set, are quarantined with their line number and reason.",
)
def training_dataset(
    context: dg.AssetExecutionContext,
    config: TrainingDatasetConfig,
    s3: S3Resource,
    base_model: dict,
) -> dg.Output[dict]:
    """Load, validate, deduplicate and split the JSONL sources; write the dataset folder."""
    from transformers import AutoTokenizer

    from genai_assets.fine_tuning.formatting import count_tokens

    source = config.source or str(paths.training_data_dir())
    fixed = _load_eval_set(config.eval_set or str(eval_set.DEFAULT_EVAL_SET))
    tokenizer = AutoTokenizer.from_pretrained(base_model["name_or_path"])
    result = ds.validate(
        _source_lines(source, s3),
        count_tokens=lambda messages: count_tokens(tokenizer, messages),
        max_tokens=config.max_tokens,
        eval_fraction=config.eval_fraction,
    )
    n_overlap = ds.exclude_overlap(result, fixed.reserved_turns(), fixed.label)
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
        "eval_set": fixed.identity(),
        "n_eval_set_overlap": n_overlap,
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
            "n_eval_set_overlap": dg.MetadataValue.int(n_overlap),
            "eval_set": fixed.label,
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
    code_version="2",  # bump when what the asset computes changes
    group_name=GROUP,
    kinds={"pytorch", "huggingface"},
    owners=["team:ml-platform"],
    tags={"stage": "training"},
    pool=GPU_POOL,
    op_tags=GPU_OP_TAGS,
    description="The base model fine-tuned on the training split (LoRA by default), trained "
    "by `python -m genai_assets.fine_tuning.sft` under Dagster Pipes: a local subprocess or a "
    "Kubernetes GPU pod (resource training_runner). A folder with a manifest.json (with the "
    "sha256 of its weights). Not trained again when the data, base model, hyperparameters and "
    "training code equal the last candidate's: the materialization says so and reuses it.",
)
def fine_tuned_model(
    context: dg.AssetExecutionContext,
    config: FineTuneConfig,
    training_runner: TrainingRunnerResource,
    mlflow: MlflowTrackingResource,
    base_model: dict,
    training_dataset: dict,
) -> dg.Output[dict]:
    """Train through the training runner, unless the last candidate had the same inputs."""
    hyperparameters = SFTHyperparameters.from_dict(config.model_dump())
    name_or_path = base_model["name_or_path"]
    fingerprint = training_fingerprint(
        dataset_hash=training_dataset["content_hash"],
        # A local folder counts by its content: a rebuilt base model is a change.
        base_model=weights.folder_sha256(name_or_path)
        if Path(name_or_path).is_dir()
        else name_or_path,
        hyperparameters=hyperparameters,
    )
    reused = _last_candidate_if_unchanged(context, fingerprint)
    if reused is not None:
        output, manifest, run_id, model_version = reused
        reason = (
            f"nothing changed since run {run_id[:8]}: same training data, base model, "
            f"hyperparameters and training code, so training would reproduce {output}; "
            "not trained again"
        )
        context.log.info(reason)
        return dg.Output(
            _model_value(output, manifest, model_version),
            metadata={
                "trained": dg.MetadataValue.bool(False),
                "reason": reason,
                "training_fingerprint": fingerprint,
                "weights_sha256": manifest["weights_sha256"],
                "model_dir": dg.MetadataValue.path(str(output)),
                "dataset_hash": training_dataset["content_hash"],
            },
        )
    # Hours of training must not end in a run that cannot be recorded (checked after the
    # reuse above: a run that trains nothing records nothing new).
    mlflow.check_reachable(context, "the fine-tuning run")
    output = paths.models_dir() / f"sft-{context.run.run_id[:8]}-{context.retry_number}"
    job = TrainingJob(
        base_model=name_or_path,
        dataset_dir=training_dataset["path"],
        output_dir=str(output),
        hyperparameters=hyperparameters,
        dataset_hash=training_dataset["content_hash"],
        base_model_label=base_model["label"],
        fingerprint=fingerprint,
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
        "trained": dg.MetadataValue.bool(True),
        "model_dir": dg.MetadataValue.path(str(output)),  # where the next run looks for it
        "training_fingerprint": fingerprint,
        "weights_sha256": manifest["weights_sha256"],
        "base_model": name_or_path,
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
    model_version, tracked = mlflow.record_fine_tuning(
        context, config.model_dump(), base_model, training_dataset, manifest, output / MANIFEST
    )
    metadata.update(tracked)
    if model_version is not None:  # found again by a run that reuses this candidate
        metadata["mlflow_model"] = dg.MetadataValue.json(model_version)
    return dg.Output(_model_value(output, manifest, model_version), metadata=metadata)


def _model_value(output: Path, manifest: dict, model_version: dict | None) -> dict:
    return {
        "mlflow": model_version,  # the registered version, for eval_report and serving_config
        "path": str(output),
        "manifest_path": str(output / MANIFEST),
        "artifact": manifest["artifact"],
        "base_model": manifest["base_model"],
        "dataset_hash": manifest["dataset_hash"],
        "weights_sha256": manifest["weights_sha256"],
        "training_fingerprint": manifest.get("training_fingerprint", ""),
        "training_metrics": {
            k: v for k, v in manifest["training_metrics"].items() if k != "loss_history"
        },
    }


def _last_candidate_if_unchanged(
    context: dg.AssetExecutionContext, fingerprint: str
) -> tuple[Path, dict, str, dict | None] | None:
    """The last candidate's folder, manifest, run and MLflow version, when its inputs were these.

    Only when its folder is still there with the same fingerprint and the weights
    its manifest recorded; anything else (no earlier candidate, other inputs, a
    deleted or altered folder) trains.
    """
    event = context.instance.get_latest_materialization_event(context.asset_key)
    if event is None or event.asset_materialization is None:
        return None
    metadata = event.asset_materialization.metadata
    last = metadata.get("training_fingerprint")
    folder = metadata.get("model_dir")
    if last is None or last.value != fingerprint or folder is None:
        return None
    output = Path(str(folder.value))
    if not (output / MANIFEST).exists():
        context.log.info(f"the last candidate {output} is gone: training again")
        return None
    manifest = json.loads((output / MANIFEST).read_text())
    if manifest.get("training_fingerprint") != fingerprint or "weights_sha256" not in manifest:
        return None
    try:
        weights.verify(output, manifest["weights_sha256"], f"{output / MANIFEST}")
    except weights.WeightsMismatch as error:
        context.log.warning(f"{error}: training again")
        return None
    registered = metadata.get("mlflow_model")
    return output, manifest, event.run_id, registered.value if registered is not None else None


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


def _champion(base: dict) -> dict:
    """The model serving now (or the base model before any promotion), checked against its entry.

    Returns ``path``, ``source``, ``version`` (None before any promotion) and
    ``weights_sha256`` (None for the base model or an entry from before weight hashes).
    """
    entry = serving.current_entry(paths.serving_dir())
    if entry is None:
        return {
            "path": base["name_or_path"],
            "source": "base model (no serving config yet)",
            "version": None,
            "weights_sha256": None,
        }
    if not Path(entry["model_dir"]).exists():
        raise dg.Failure(
            f"the serving config (version {entry['version']}) names {entry['model_dir']}, "
            "which no longer exists; restore it or roll back before evaluating"
        )
    recorded = entry.get("weights_sha256")
    if recorded is not None:
        try:  # the champion's numbers must be those of the weights being served
            weights.verify(
                entry["model_dir"], recorded, f"serving config version {entry['version']}"
            )
        except weights.WeightsMismatch as error:
            raise dg.Failure(str(error), allow_retries=False) from error
    return {
        "path": entry["model_dir"],
        "source": f"serving config version {entry['version']}",
        "version": entry["version"],
        "weights_sha256": recorded,
    }


def _previous_evaluation(context: dg.AssetExecutionContext, key: str) -> dict | None:
    """The last report's numbers and run id, when it evaluated exactly this (its ``key``)."""
    event = context.instance.get_latest_materialization_event(context.asset_key)
    if event is None or event.asset_materialization is None:
        return None
    metadata = event.asset_materialization.metadata
    if "evaluation_key" not in metadata or metadata["evaluation_key"].value != key:
        return None
    report_json = Path(str(metadata["report_path"].value)).with_suffix(".json")
    if not report_json.exists():
        return None
    report = json.loads(report_json.read_text())
    return {**report, "run_id": report.get("evaluated_in_run", event.run_id)}


@dg.asset(
    code_version="2",  # bump when what the asset computes changes
    group_name=GROUP,
    kinds={"pytorch"},
    owners=["team:ml-platform"],
    tags={"stage": "evaluation"},
    description="Perplexity, ROUGE-L and BLEU of the candidate, the base model and the champion "
    "(the model the serving config names) on the fixed, versioned evaluation set, which new "
    "training data cannot change, with the gate verdict; the new data's held-out split is "
    "reported beside it. Records the sha256 of the candidate weights it evaluated.",
)
def eval_report(
    context: dg.AssetExecutionContext,
    config: EvalReportConfig,
    mlflow: MlflowTrackingResource,
    base_model: dict,
    training_dataset: dict,
    fine_tuned_model: dict,
) -> dg.Output[dict]:
    """Evaluate the models on the fixed eval set and the held-out split; write the report."""
    recorded_set = training_dataset["eval_set"]
    fixed = _load_eval_set(recorded_set["path"])
    if fixed.sha256 != recorded_set["sha256"]:
        raise dg.Failure(
            f"the fixed evaluation set {fixed.path} changed since training_dataset read it "
            f"({recorded_set['sha256'][:12]} -> {fixed.sha256[:12]}); run the whole job again",
            allow_retries=False,
        )
    held_out = ds.read_split(Path(training_dataset["path"]), "eval")
    settings_ = evaluation.EvalSettings(
        max_new_tokens=config.max_new_tokens,
        max_generation_examples=config.max_generation_examples,
    )
    try:  # the weights evaluated must be the weights training wrote
        candidate_sha = weights.verify(
            fine_tuned_model["path"], fine_tuned_model["weights_sha256"], "the training manifest"
        )
    except weights.WeightsMismatch as error:
        raise dg.Failure(str(error), allow_retries=False) from error
    champion = _champion(base_model)
    same_weights = candidate_sha == champion["weights_sha256"]

    def evaluate(records: list[dict], with_base: bool) -> dict[str, dict]:
        scored = {
            "candidate": evaluation.evaluate_model(fine_tuned_model["path"], records, settings_)
        }
        if with_base or champion["version"] is None:
            scored["base"] = evaluation.evaluate_model(
                base_model["name_or_path"], records, settings_
            )
        if champion["version"] is None:
            scored["champion"] = scored["base"]
        elif same_weights:
            scored["champion"] = scored["candidate"]
        else:
            scored["champion"] = evaluation.evaluate_model(champion["path"], records, settings_)
        return scored

    key = evaluation.evaluation_key(
        candidate=candidate_sha,
        champion=champion["weights_sha256"] or f"{champion['path']}@{champion['version']}",
        base_model=base_model["name_or_path"],
        eval_set=fixed.sha256,
        held_out=training_dataset["content_hash"],
        settings=asdict(settings_),
    )
    reused = _previous_evaluation(context, key)
    if reused is not None:  # the same models on the same records: the numbers cannot differ
        results = {name: reused[name] for name in ("candidate", "base", "champion")}
        held_out_results = reused["held_out"]
        context.log.info(
            f"same models and records as run {reused['run_id'][:8]}: not evaluated again"
        )
    else:
        results = evaluate(fixed.records, with_base=True)
        held_out_results = evaluate(held_out, with_base=False)
    thresholds = serving.GateThresholds(
        max_perplexity=config.max_perplexity,
        min_rouge_l=config.min_rouge_l,
        min_bleu=config.min_bleu,
        min_relative_improvement=config.min_relative_improvement,
    )
    gate = serving.decide_promotion(
        results["candidate"], results["champion"], thresholds, same_weights=same_weights
    )
    markdown = evaluation.render_report(
        results, gate.to_dict(), title=f"fixed evaluation set {fixed.label}"
    )
    markdown += "\n" + evaluation.render_report(
        held_out_results,
        None,
        title="held-out split of the new training data (not gated)",
        heading="##",
    )
    markdown += f"\nChampion: {champion['source']}. Base model: {base_model['label']}.\n"
    report_dir = paths.reports_dir() / f"{context.run.run_id[:8]}"
    report_dir.mkdir(parents=True, exist_ok=True)
    value = {
        **results,
        "held_out": held_out_results,
        "eval_set": fixed.identity(),
        "champion_source": champion["source"],
        "champion_version": champion["version"],
        "champion_weights_sha256": champion["weights_sha256"],
        "candidate_weights_sha256": candidate_sha,
        "same_weights": same_weights,
        "candidate_model": fine_tuned_model,
        "gate_thresholds": asdict(thresholds),
        "gate": gate.to_dict(),
        "n_eval_records": len(fixed.records),
        "n_held_out_records": len(held_out),
        "report_path": str(report_dir / "eval_report.md"),
        "evaluation_key": key,
        "evaluated_in_run": reused["run_id"] if reused else context.run.run_id,
    }
    serving.atomic_write_text(report_dir / "eval_report.md", markdown)
    serving.atomic_write_text(
        report_dir / "eval_report.json", json.dumps(value, indent=2, default=str)
    )
    metadata: dict[str, object] = {
        "report": dg.MetadataValue.md(markdown),
        "report_path": dg.MetadataValue.path(value["report_path"]),
        "champion_source": champion["source"],
        "gate_passed": dg.MetadataValue.bool(gate.passed),
        "eval_set": fixed.label,
        "eval_set_version": dg.MetadataValue.int(fixed.version),
        "eval_set_sha256": fixed.sha256,
        "candidate_weights_sha256": candidate_sha,
        "n_eval_records": dg.MetadataValue.int(len(fixed.records)),
        "n_held_out_records": dg.MetadataValue.int(len(held_out)),
        "evaluation_key": key,
        "evaluated": dg.MetadataValue.bool(reused is None),
        **mlflow.record_evaluation(
            context, value, [report_dir / "eval_report.md", report_dir / "eval_report.json"]
        ),
    }
    for prefix, scored in (("", results), ("held_out_", held_out_results)):
        for name, result in scored.items():
            for metric in ("perplexity", "rouge_l", "bleu"):
                if result[metric] is not None:  # None: a diverged model (and a failed gate)
                    metadata[f"{prefix}{name}_{metric}"] = dg.MetadataValue.float(
                        float(result[metric])
                    )
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
    code_version="2",  # bump when what the asset computes changes
    group_name=GROUP,
    kinds={"yaml"},
    owners=["team:ml-platform"],
    tags={"stage": "serving"},
    output_required=False,  # a refused first promotion has no config in effect to record
    description="The vLLM serve config of the promoted model. Promotes the candidate only when "
    "the promotion gate passed, its weights still hash to what eval_report evaluated, and the "
    "champion it was judged against is still the one serving (compare-and-swap, under the "
    "serving lock); both serving files change in one atomic step, previous configs are kept "
    "(rollback: the rollback_serving_config job). A refused promotion leaves serving untouched "
    "and records the config in effect, with the reason.",
)
def serving_config(
    context: dg.AssetExecutionContext,
    config: ServingConfigConfig,
    mlflow: MlflowTrackingResource,
    eval_report: dict,
):
    """Promote the candidate: write vllm_serve.yaml and the serving state."""
    serving_dir = paths.serving_dir()
    decision = serving.decide_promotion(
        eval_report["candidate"],
        eval_report["champion"],
        serving.GateThresholds(**eval_report["gate_thresholds"]),
        same_weights=eval_report["same_weights"],
    )
    if not decision.passed:  # an expected outcome: the run stays green, serving untouched
        refused = [r for r in decision.reasons if r.startswith("FAILED")]
        current = serving.current_entry(serving_dir)
        context.log.info("not promoted, the serving config is unchanged: " + "; ".join(refused))
        if current is None:
            return  # nothing serves yet, so there is no config in effect to record
        yield dg.Output(
            {**_serving_value(serving_dir, current), "promoted": False, "refused": refused},
            metadata={
                "promoted": dg.MetadataValue.bool(False),
                "reason": "; ".join(refused),
                "version": dg.MetadataValue.int(current["version"]),
                "model_dir": dg.MetadataValue.path(current["model_dir"]),
            },
        )
        return
    candidate = eval_report["candidate_model"]
    model_dir = Path(candidate["path"])
    try:  # promote exactly the weights that were evaluated
        weights.verify(model_dir, eval_report["candidate_weights_sha256"], "eval_report")
    except weights.WeightsMismatch as error:
        raise dg.Failure(
            f"not promoted: {error}; the serving config is unchanged", allow_retries=False
        ) from error
    vllm = serving.build_vllm_config(
        model_dir=str(model_dir),
        artifact=candidate["artifact"],
        base_model=candidate["base_model"],
        served_model_name=config.served_model_name,
        max_model_len=config.max_model_len or _max_model_len(model_dir, candidate["base_model"]),
        dtype=config.dtype,
        tensor_parallel_size=config.tensor_parallel_size,
    )
    # The registry alias must follow the promotion: check MLflow answers before promoting.
    mlflow.check_reachable(context, "the champion alias")
    try:
        entry = serving.promote(
            serving_dir,
            {
                "model_dir": str(model_dir),
                "manifest_path": candidate["manifest_path"],
                "artifact": candidate["artifact"],
                "weights_sha256": eval_report["candidate_weights_sha256"],
                "eval_set": eval_report["eval_set"],
                "served_model_name": config.served_model_name,
                "vllm": vllm,
                "metrics": {
                    name: {m: eval_report[name][m] for m in ("perplexity", "rouge_l", "bleu")}
                    for name in ("candidate", "champion", "base")
                },
                "replaced": eval_report["champion_source"],
                "run_id": context.run.run_id,
                "mlflow": candidate.get("mlflow"),  # kept so a rollback can move the alias back
            },
            expected_version=eval_report["champion_version"],
        )
    except serving.ServingConflict as error:
        raise dg.Failure(str(error), allow_retries=False) from error
    config_path = serving_dir / serving.VLLM_CONFIG
    yield dg.Output(
        {**_serving_value(serving_dir, entry), "promoted": True},
        metadata={
            "promoted": dg.MetadataValue.bool(True),
            "version": dg.MetadataValue.int(entry["version"]),
            "model_dir": dg.MetadataValue.path(str(model_dir)),
            "weights_sha256": entry["weights_sha256"],
            "config_path": dg.MetadataValue.path(str(config_path)),
            "vllm_serve.yaml": dg.MetadataValue.md(
                f"```yaml\n{config_path.read_text()}```\n"
                f"`vllm serve --config {config_path}`; locally: "
                f"`transformers serve {model_dir} --device cpu`"
            ),
            **mlflow.record_serving(context, entry.get("mlflow")),
        },
    )


def _serving_value(serving_dir: Path, entry: dict) -> dict:
    return {
        **entry,
        "config_path": str(serving_dir / serving.VLLM_CONFIG),
        "state_path": str(serving_dir / serving.STATE),
    }
