"""Opening the vector store: Qdrant Edge on a folder, or qdrant-client on a server URL."""

from pathlib import Path

from qdrant_client import QdrantClient

from genai_assets.rag.edge_store import EdgeStore, is_local_mode_folder
from genai_assets.rag.server_store import ServerStore
from genai_assets.rag.vector_store import LegacyStorageError, VectorStore

MIGRATE_COMMAND = "python -m genai_assets.rag.migrate"


def open_store(
    url: str | None = None,
    api_key: str | None = None,
    folder: Path | str | None = None,
    legacy_folder: Path | None = None,
    timeout_s: int = 60,
) -> VectorStore:
    """A new open store; the caller closes it.

    ``url``: a Qdrant server. Else ``folder``: Qdrant Edge on that folder, or
    ``":memory:"`` for qdrant-client's in-memory mode (nothing persists).
    ``legacy_folder``: where the previous version kept its embedded storage.

    Raises:
        LegacyStorageError: ``legacy_folder`` still holds qdrant-client local-mode
            storage; the message names the command that migrates it.
    """
    if url:
        return ServerStore(QdrantClient(url=url, api_key=api_key, timeout=timeout_s), url)
    if folder is None:
        raise ValueError("open_store needs a server url or a folder")
    if str(folder) == ":memory:":
        return ServerStore(QdrantClient(location=":memory:"), ":memory:")
    if legacy_folder is not None and is_local_mode_folder(legacy_folder):
        raise LegacyStorageError(
            f"{legacy_folder} holds the index written by the previous version (qdrant-client "
            f"local mode); migrate it to Qdrant Edge with `{MIGRATE_COMMAND} --source "
            f"{legacy_folder} --target {folder}` (vectors and payloads are copied, nothing is "
            "re-embedded)"
        )
    return EdgeStore(Path(folder))
