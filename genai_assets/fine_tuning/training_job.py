"""What a training run is: its hyperparameters, its job, its fingerprint and its result.

Shared by the Dagster asset that launches training and by the entry point
(``genai_assets.fine_tuning.sft``) that runs it, locally or in a pod; no dagster
import, and nothing here loads torch.
"""

import hashlib
import json
import math
import subprocess
from dataclasses import asdict, dataclass, field, fields
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Literal

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
    Path(__file__).resolve().parent / "sft.py",
    Path(__file__).resolve().parent / "formatting.py",
)


def training_code_sha256() -> str:
    """sha256 of the training code (the SFT module and the chat formatting it trains on)."""
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


def candidate_value(output: Path, manifest: dict, model_version: dict | None) -> dict:
    """The fine_tuned_model asset value: the folder, what its manifest says, the MLflow version."""
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


def sampled_loss_curve(history: list[dict], rows: int = 25) -> list[dict]:
    """About ``rows`` evenly spaced points of the loss history, always with the last one."""
    stride = max(1, math.ceil(len(history) / rows))
    return history[::stride] + ([history[-1]] if (len(history) - 1) % stride else [])
