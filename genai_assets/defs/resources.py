"""Which resources the code location binds, decided by the environment.

``GENAI_ASSETS_ENV`` (``local`` by default, or ``production``) is read when the
definitions load, in ``genai_assets.settings.environment``; secrets are
``dg.EnvVar`` references resolved at run time and hidden in the UI.
"""

import os

import dagster as dg

from genai_assets import settings
from genai_assets.resources.documents import DocumentSourcesResource
from genai_assets.resources.embeddings import SentenceTransformerResource
from genai_assets.resources.openai_api import OpenAICompatibleResource
from genai_assets.resources.qdrant import QdrantResource


def build_resources(environment: str) -> dict[str, object]:
    """The resource dictionary for ``environment`` (``local`` or ``production``)."""
    resources: dict[str, object] = {
        "document_sources": DocumentSourcesResource(),
        "embedder": SentenceTransformerResource(),
        "qdrant": QdrantResource(
            url=dg.EnvVar("QDRANT_URL").get_value() or None,
            api_key=dg.EnvVar("QDRANT_API_KEY") if "QDRANT_API_KEY" in os.environ else None,
        ),
        "io_manager": dg.FilesystemIOManager(base_dir=str(settings.storage_root() / "assets")),
        "llm": OpenAICompatibleResource(
            base_url=dg.EnvVar("OPENAI_BASE_URL").get_value() or None,
            model=dg.EnvVar("OPENAI_MODEL").get_value() or None,
            # An unset EnvVar fails at launch, so bind it only when the key exists.
            api_key=dg.EnvVar("OPENAI_API_KEY") if "OPENAI_API_KEY" in os.environ else None,
        ),
    }
    return resources


@dg.definitions
def resources() -> dg.Definitions:
    """Resources for the environment named by $GENAI_ASSETS_ENV."""
    return dg.Definitions(resources=build_resources(settings.environment()))
