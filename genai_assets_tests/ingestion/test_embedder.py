"""The embedding model: limits read without loading it, dtype 'auto' decided once, cached."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from genai_assets.rag import precision as precision_module
from genai_assets.rag.chunking import Chunker
from genai_assets.rag.embedder import PAD_TO_MULTIPLE, Embedder
from genai_assets.rag.model_files import PACKAGED_MODEL, load_tokenizer, model_info, model_revision
from genai_assets.rag.precision import Precision, known_precision
from genai_assets.rag.token_inputs import TokenInputs

TEXTS = [
    "Skyline Vault stores encrypted snapshots of every protected volume.",
    "The web console listens on port 8443 by default.",
    "Retention policies keep daily snapshots for thirty days.",
]


def test_model_info_without_loading_the_model():
    info = model_info(PACKAGED_MODEL)
    assert (info.max_seq_length, info.dimension) == (256, 384)


def test_missing_model_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no local folder"):
        model_info(str(tmp_path / "nope"))


def test_auto_dtype_is_decided_at_load_then_remembered_without_torch(tmp_path, monkeypatch):
    monkeypatch.setattr(precision_module, "_DECISIONS", {})
    cache = tmp_path / "dtype.json"
    assert known_precision(PACKAGED_MODEL, "cpu", "auto", cache) is None  # only a probe can tell
    first = Embedder(PACKAGED_MODEL, device="cpu", dtype="auto", dtype_cache=cache)
    assert first.dtype in ("bf16", "fp32") and first.dtype_reason.startswith("probe: bf16")
    assert first.precision == Precision("cpu", first.dtype, first.dtype_reason)
    vectors = first.encode(TEXTS)
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
    assert list(json.loads(cache.read_text()).values()) == [
        ["cpu", first.dtype, first.dtype_reason]
    ]

    # Another process on the same machine knows the decision without importing torch (an
    # unchanged rerun must not pay seconds for it) and the model loads at it, no probe.
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; "
            "from genai_assets.rag.precision import known_precision; "
            f"p = known_precision({PACKAGED_MODEL!r}, 'cpu', 'auto', Path({str(cache)!r})); "
            "print(p.dtype, 'torch' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert child.stdout.split() == [first.dtype, "False"]
    monkeypatch.setattr(precision_module, "_DECISIONS", {})
    second = Embedder(PACKAGED_MODEL, device="cpu", dtype="auto", dtype_cache=cache)
    assert second.dtype == first.dtype
    assert "decided earlier on this machine" in second.dtype_reason


def test_a_given_precision_is_used_as_it_is():
    decided = Precision("cpu", "bf16", "the collection's")
    model = Embedder(PACKAGED_MODEL, dtype="fp32", precision=decided)
    assert (model.device, model.dtype, model.dtype_reason) == ("cpu", "bf16", "the collection's")
    assert next(model.model.parameters()).dtype == torch.bfloat16


def test_model_revision_changes_with_the_weights_and_configs_not_the_readme(tmp_path):
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "model"
    shutil.copytree(model_info(PACKAGED_MODEL).path, folder)
    original = model_revision(str(folder))
    assert original == model_revision(PACKAGED_MODEL)  # a copy is the same model

    (folder / "README.md").write_text("Another description.\n")
    assert model_revision(str(folder)) == original

    # Another checkpoint under the same name: every tensor moved a little (fine-tuning).
    weights = load_file(folder / "model.safetensors")
    save_file({k: v * 1.01 for k, v in weights.items()}, folder / "model.safetensors")
    tuned = model_revision(str(folder))
    assert tuned != original

    pooling = folder / "1_Pooling" / "config.json"
    pooling.write_text(
        pooling.read_text().replace(
            '"pooling_mode_mean_tokens": true', '"pooling_mode_mean_tokens": false'
        )
    )
    assert model_revision(str(folder)) not in (original, tuned)


def test_configured_dtype_is_used_as_is(tmp_path):
    model = Embedder(PACKAGED_MODEL, device="cpu", dtype="bf16", dtype_cache=tmp_path / "c.json")
    assert (model.dtype, model.dtype_reason) == ("bf16", "configured")
    fp32 = Embedder(PACKAGED_MODEL, device="cpu", dtype="fp32").encode(TEXTS)
    bf16 = model.encode(TEXTS)
    assert np.min(np.sum(fp32 * bf16, axis=1)) > 0.99
    assert not (tmp_path / "c.json").exists()  # nothing was decided, nothing cached


def test_batching_by_token_length_keeps_each_text_its_own_vector():
    texts = [f"{'word ' * (i * 7 % 40 + 1)}{i}" for i in range(23)]  # lengths out of order
    model = Embedder(PACKAGED_MODEL, device="cpu", dtype="fp32", batch_size=4)
    one_by_one = np.vstack([model.encode([text]) for text in texts])
    from_texts = model.encode(texts)
    assert np.allclose(from_texts, one_by_one, atol=1e-5)
    with pytest.raises(ValueError, match="2 token id lists for 23 texts"):
        model.encode(texts, [[1], [2]])
    assert model.encode([]).shape == (0, 384)


def test_token_ids_from_the_chunker_give_the_same_vectors_as_the_texts():
    chunker = Chunker(load_tokenizer(PACKAGED_MODEL), 40)
    text = " ".join(f"Section {i}: volume {i} snapshots are kept {i * 3} days." for i in range(30))
    chunks = chunker.chunk(text)
    texts, token_ids = [c.text for c in chunks], [c.token_ids for c in chunks]
    model = Embedder(PACKAGED_MODEL, device="cpu", dtype="fp32", batch_size=4)
    from_texts = model.encode(texts)
    assert not model.uses_token_ids  # texts alone never try the token-id path
    from_ids = model.encode(texts, token_ids)
    assert model.uses_token_ids
    # The same vectors, up to float rounding: the token-id path pads batches to a
    # multiple of 16 tokens, which changes the order of some sums.
    assert np.allclose(from_ids, from_texts, atol=1e-6)


def test_token_ids_that_are_not_the_models_own_fall_back_to_the_texts(caplog):
    texts = TEXTS
    model = Embedder(PACKAGED_MODEL, device="cpu", dtype="fp32")
    wrong_ids = [[1000 + i] * 5 for i in range(len(texts))]
    vectors = model.encode(texts, wrong_ids)
    assert not model.uses_token_ids
    assert "differ from the model's own tokenisation" in caplog.text
    assert np.array_equal(vectors, model.encode(texts))


@pytest.mark.parametrize(("longest", "width"), [(100, 112), (240, 250), (300, 250)])
def test_padded_batch_width_is_capped_at_the_models_maximum(longest, width):
    # A limit that is no multiple of 16: rounding up must not pass it.
    inputs = TokenInputs(
        prefix=(101,), suffix=(102,), pad_id=0, max_length=250, token_types=True, other=()
    )
    features = inputs.features([[7] * longest, [7] * 5], PAD_TO_MULTIPLE)
    assert features["input_ids"].shape == (2, width)
    assert features["attention_mask"].sum(dim=1).tolist() == [min(longest + 2, 250), 7]
