"""Shared test set-up: offline model loading and a throwaway Dagster home per test."""

import os

# Set before anything imports huggingface_hub / transformers / ragas.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


@pytest.fixture
def dagster_home(tmp_path, monkeypatch):
    """A fresh DAGSTER_HOME: local storage (Qdrant, snapshots, IO manager) lands in tmp_path."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home
