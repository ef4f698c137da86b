"""The embedding model: limits read without loading it, dtype 'auto' decided once, cached."""

import json

import numpy as np
import pytest

from genai_assets.rag import embedder as embedder_module
from genai_assets.rag.chunking import Chunker
from genai_assets.rag.embedder import (
    PACKAGED_MODEL,
    PAD_TO_MULTIPLE,
    Embedder,
    TokenInputs,
    load_tokenizer,
    model_info,
)

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
