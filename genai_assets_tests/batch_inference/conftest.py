"""Fixtures for the batch inference tests: a tiny real chat model behind `transformers serve`."""

from pathlib import Path

import pytest

from genai_assets.batch_inference.local_server import serve_model
from genai_assets.fine_tuning.tiny_model import TinyModelSpec, ensure_tiny_model

TRAINING_TEXT = """\
Skyline Vault is an encrypted backup and restore appliance made by Corvid Systems.
Use the skyvault CLI to create vaults, take snapshots and restore from restore points.
The configuration file is /etc/skyvault/vault.toml and the default port is 8443.
Retention policies decide how long snapshots are kept; deduplication saves space.
The Keystone key manager holds the encryption keys; agents run on protected hosts.
Replication copies vaults to a secondary site; quotas limit how much a tenant stores.
"""


@pytest.fixture(scope="session")
def tiny_chat_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package's tiny GPT-2 (ChatML template), untrained: serving needs no good answers."""
    text = tmp_path_factory.mktemp("tiny_chat_text") / "skyline.txt"
    text.write_text(TRAINING_TEXT * 20)
    spec = TinyModelSpec(vocab_size=600, pretrain_epochs=0)
    return ensure_tiny_model([text], tmp_path_factory.mktemp("tiny_chat_model"), spec=spec)


@pytest.fixture(scope="session")
def transformers_server(tiny_chat_model: Path, tmp_path_factory: pytest.TempPathFactory):
    """`transformers serve` on 127.0.0.1 serving the tiny model; yields (base_url, model)."""
    with serve_model(tiny_chat_model, tmp_path_factory.mktemp("hf_home")) as server:
        yield server.base_url, server.model
