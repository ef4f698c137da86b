"""Run configuration of the fine-tuning assets and of the serving-config rollback job.

Field names are the config keys of run configs and schedules: renaming one breaks
every stored run config that sets it.
"""

from typing import Literal

import dagster as dg
from pydantic import Field

TINY_LOCAL = "tiny-local"


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


class ModelRollbackConfig(dg.Config):
    """Why the serving config is rolled back (kept in the serving state)."""

    reason: str = Field(default="manual rollback", description="Recorded with the rollback.")
