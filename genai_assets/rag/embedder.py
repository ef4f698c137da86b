"""The loaded sentence-transformers model and how it encodes.

The model is loaded only when there is text to embed (or, once per machine, to
probe the dtype); what can be known without loading it is in
:mod:`genai_assets.rag.model_files` and :mod:`genai_assets.rag.precision`.
"""

import copy
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from genai_assets.rag.model_files import resolve_model_path
from genai_assets.rag.precision import (
    TORCH_DTYPES,
    Precision,
    decision_key,
    known_precision,
    remember_precision,
)
from genai_assets.rag.token_inputs import TokenInputs

log = logging.getLogger(__name__)

# bf16 is kept only if it is clearly faster and gives the same embeddings: the mean
# cosine between its vectors and fp32's over the probe batch.
BF16_MIN_SPEEDUP = 1.15
BF16_MIN_COSINE = 0.999
PROBE_TEXTS = 8
# Every new input shape makes oneDNN build and cache kernels (up to 1,024 of them), so
# batches padded to their exact longest text cost about 250 MB more memory on a CPU
# than batches padded to a multiple of 16 tokens, which leaves at most 16 widths at
# the model's 256-token limit; the speed is the same (measured on reST, bf16).
PAD_TO_MULTIPLE = 16
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
            remember_precision(decision_key(model, device, dtype), precision, dtype_cache)
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
    ) -> TokenInputs | None:
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


def _unit_rows(vectors: Any) -> np.ndarray:
    """Rows scaled to unit length in float32 (normalising in bf16 leaves them ~0.4% off)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
