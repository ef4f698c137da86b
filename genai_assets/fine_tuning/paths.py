"""Where fine-tuning artifacts live; resolved at run time, never at import.

Everything sits under one root: ``$FINE_TUNING_ROOT`` when set (on Kubernetes, a
volume mounted at the same path in the Dagster step and the training pod), else
``settings.storage_root() / "fine_tuning"``.
"""

import os
from pathlib import Path

from genai_assets import settings

ROOT_VARIABLE = "FINE_TUNING_ROOT"


def training_data_dir() -> Path:
    """The default training data folder: the one the training-data sensor watches.

    ``$GENAI_ASSETS_TRAINING_DATA_DIR``, else the shipped ``genai_assets/data/training``.
    """
    return settings.training_data_dir()


def root() -> Path:
    """The fine-tuning artifact root."""
    configured = os.environ.get(ROOT_VARIABLE)
    return Path(configured) if configured else settings.storage_root() / "fine_tuning"


def base_models_dir() -> Path:
    """Locally-built base models (the tiny model cache)."""
    return root() / "base_models"


def datasets_dir() -> Path:
    """Validated datasets, one folder per content hash."""
    return root() / "datasets"


def models_dir() -> Path:
    """Fine-tuned models, one folder per training run."""
    return root() / "models"


def reports_dir() -> Path:
    """Evaluation reports (markdown and JSON)."""
    return root() / "reports"


def serving_dir() -> Path:
    """The serving config, its state and history."""
    return root() / "serving"
