"""Fixtures for the batch inference tests: a tiny real chat model behind `transformers serve`."""

from pathlib import Path

import pytest

from genai_assets.batch_inference.local_server import serve_model

CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>{{ message['content'] }}\n"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)

TRAINING_TEXT = """\
Skyline Vault is an encrypted backup and restore appliance made by Corvid Systems.
Use the skyvault CLI to create vaults, take snapshots and restore from restore points.
The configuration file is /etc/skyvault/vault.toml and the default port is 8443.
Retention policies decide how long snapshots are kept; deduplication saves space.
The Keystone key manager holds the encryption keys; agents run on protected hosts.
Replication copies vaults to a secondary site; quotas limit how much a tenant stores.
"""


def build_tiny_chat_model(folder: Path) -> Path:
    """A ~1.5M-parameter GPT-2 with a byte-level BPE tokenizer and a chat template."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        [TRAINING_TEXT] * 20,
        vocab_size=600,
        min_frequency=1,
        special_tokens=["<|endoftext|>"],
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe._tokenizer,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        pad_token="<|endoftext|>",
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(folder)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_layer=2,
        n_head=2,
        n_embd=128,
        n_positions=256,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    import torch

    torch.manual_seed(0)
    GPT2LMHeadModel(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_chat_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_chat_model(tmp_path_factory.mktemp("tiny_chat_model"))


@pytest.fixture(scope="session")
def transformers_server(tiny_chat_model: Path, tmp_path_factory: pytest.TempPathFactory):
    """`transformers serve` on 127.0.0.1 serving the tiny model; yields (base_url, model)."""
    with serve_model(tiny_chat_model, tmp_path_factory.mktemp("hf_home")) as server:
        yield server.base_url, server.model
