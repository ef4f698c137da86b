"""Both index adapters, for tests that must hold on either engine.

``edge``: Qdrant Edge, the embedded engine, on a temporary folder.
``server-standin``: the server adapter (qdrant-client) against qdrant-client's
local mode, the runnable stand-in for a Qdrant server's API (no Qdrant server
can be installed here). Same code as production against ``QDRANT_URL``.
"""

from pathlib import Path

from qdrant_client import QdrantClient

from genai_assets.rag.edge_store import EdgeStore
from genai_assets.rag.server_store import ServerStore
from genai_assets.rag.vector_store import VectorStore

ENGINES = ["edge", "server-standin"]


def open_engine(engine: str, folder: Path) -> VectorStore:
    """A store of ``engine`` on ``folder`` (created if missing)."""
    if engine == "edge":
        return EdgeStore(folder / "edge")
    (folder / "local-mode").mkdir(parents=True, exist_ok=True)
    return ServerStore(QdrantClient(path=str(folder / "local-mode")), "local-mode stand-in")
