"""The inputs of fine-tuning: the base model and the validated, split training dataset."""

import json
from pathlib import Path

import dagster as dg
from dagster_aws.s3 import S3Resource

from genai_assets import settings
from genai_assets.defs.automation.policies import external_retry_policy
from genai_assets.defs.fine_tuning.configs import TINY_LOCAL, BaseModelConfig, TrainingDatasetConfig
from genai_assets.defs.fine_tuning.shared import fine_tuning_asset, load_eval_set, quarantine_table
from genai_assets.fine_tuning import dataset as ds
from genai_assets.fine_tuning import eval_set, paths, sources
from genai_assets.fine_tuning.progress import library_logs_to
from genai_assets.fine_tuning.tiny_model import TINY_MODEL_LABEL, ensure_tiny_model


@fine_tuning_asset(
    stage="model",
    code_version="1",
    kinds={"huggingface"},
)
def base_model(context: dg.AssetExecutionContext, config: BaseModelConfig) -> dg.Output[dict]:
    """Build (or reuse) the tiny local model, or record the configured model id/folder.

    The model fine-tuning starts from. By default a tiny GPT-2-architecture model built on
    this machine (tokenizer trained on local text, a few epochs of next-token training on
    the sample corpus): a stand-in for a pretrained model, since nothing can be downloaded
    here.
    """
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
    with library_logs_to(context.log):  # transformers' warnings as run log lines
        folder = ensure_tiny_model(
            text_dirs, paths.base_models_dir(), pretrain_folders=pretrain_dirs
        )
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


def _source_lines(source: str, s3: S3Resource):
    if source.startswith("s3://"):
        bucket, _, prefix = source.removeprefix("s3://").partition("/")
        return sources.iter_s3_lines(s3.get_client(), bucket, prefix)
    return sources.iter_local_lines(Path(source))


@fine_tuning_asset(
    stage="data",
    code_version="2",
    kinds={"json"},
    retry_policy=external_retry_policy(),  # an s3:// source
)
def training_dataset(
    context: dg.AssetExecutionContext,
    config: TrainingDatasetConfig,
    s3: S3Resource,
    base_model: dict,
) -> dg.Output[dict]:
    """Load, validate, deduplicate and split the JSONL sources; write the dataset folder.

    Validated chat conversations split into train and eval by group (records sharing a
    question or an answer stay on one side); bad lines, and records that repeat the fixed
    evaluation set, are quarantined with their line number and reason.
    """
    from transformers import AutoTokenizer

    from genai_assets.fine_tuning.formatting import count_tokens

    source = config.source or str(paths.training_data_dir())
    fixed = load_eval_set(config.eval_set or str(eval_set.DEFAULT_EVAL_SET))
    with library_logs_to(context.log):  # transformers' warnings as run log lines
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
            "quarantine": quarantine_table(result.quarantined[:50]),
            "tokens_total": dg.MetadataValue.int(int(stats.get("total", 0))),
            "tokens_mean": dg.MetadataValue.float(float(stats.get("mean", 0.0))),
            "tokens_p95": dg.MetadataValue.int(int(stats.get("p95", 0))),
            "tokens_max": dg.MetadataValue.int(int(stats.get("max", 0))),
        },
    )
