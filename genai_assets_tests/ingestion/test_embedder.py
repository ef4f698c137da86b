"""The embedding model: limits read without loading it, dtype 'auto' decided once, cached."""

import json

import numpy as np
import pytest

from genai_assets.rag import embedder as embedder_module
from genai_assets.rag.embedder import PACKAGED_MODEL, Embedder, model_info

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


def test_auto_dtype_is_probed_on_real_texts_then_remembered(tmp_path, monkeypatch):
    monkeypatch.setattr(embedder_module, "_DTYPE_CHOICES", {})
    cache = tmp_path / "dtype.json"
    first = Embedder(PACKAGED_MODEL, device="cpu", dtype="auto", dtype_cache=cache)
    assert first.dtype is None  # decided on the first texts to embed, not before
    vectors = first.encode(TEXTS)
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
    assert first.dtype in ("bf16", "fp32") and first.dtype_reason.startswith("probe: bf16")
    assert list(json.loads(cache.read_text()).values()) == [[first.dtype, first.dtype_reason]]

    # Another process on the same machine: no probe, the cached decision.
    monkeypatch.setattr(embedder_module, "_DTYPE_CHOICES", {})
    second = Embedder(PACKAGED_MODEL, device="cpu", dtype="auto", dtype_cache=cache)
    assert second.dtype == first.dtype
    assert "decided earlier on this machine" in second.dtype_reason


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
    counted_here = model.encode(texts)
    counts = [len(model.model.tokenizer(text)["input_ids"]) for text in texts]
    counted_by_caller = model.encode(texts, counts)
    assert np.allclose(counted_here, one_by_one, atol=1e-5)
    assert np.array_equal(counted_by_caller, counted_here)
    with pytest.raises(ValueError, match="2 token counts for 23 texts"):
        model.encode(texts, [1, 2])
    assert model.encode([]).shape == (0, 384)
