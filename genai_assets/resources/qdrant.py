"""The vector index resource: Qdrant Edge embedded by default, a Qdrant server in production."""

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from genai_assets import settings
from genai_assets.rag.edge_store import SPEC_FILE
from genai_assets.rag.search import search
from genai_assets.rag.stores import open_store
from genai_assets.rag.vector_store import (
    DEFAULT_QUERY_MODE,
    DEFAULT_RRF_K,
    Hit,
    QueryMode,
    VectorStore,
)


class QdrantResource(dg.ConfigurableResource):
    """Where the vectors live.

    With no ``url``, Qdrant Edge (Qdrant's engine as a library) runs in the step's
    process on the folder ``location`` (default ``$DAGSTER_HOME/storage/index``):
    one shard folder per collection, the alias as a pointer file. A shard is open
    in one process at a time, so the index is opened inside a step and closed at
    its end, never held across steps. ``location=":memory:"`` uses qdrant-client's
    in-memory mode instead (nothing persists). With ``url``, the same code talks to
    a Qdrant server; ``api_key`` should be ``dg.EnvVar("QDRANT_API_KEY")``.
    """

    url: str | None = Field(default=None, description="Qdrant server URL; None: embedded mode.")
    api_key: str | None = Field(default=None, description="Server API key; use dg.EnvVar.")
    location: str | None = Field(
        default=None,
        description="Embedded mode: a folder or ':memory:' (default: under DAGSTER_HOME).",
    )
    collection: str = Field(
        default="documents",
        description="The name readers use (an alias); versioned collections are named after it.",
    )
    timeout_s: int = Field(default=60, description="Server request timeout in seconds.")

    def storage_path(self) -> Path | None:
        """The embedded index folder, or None for a server or ``:memory:``."""
        if self.url or self.location == ":memory:":
            return None
        return Path(self.location) if self.location else settings.storage_root() / "index"

    def legacy_storage_path(self) -> Path | None:
        """Where the previous version kept its embedded storage by default.

        Before Qdrant Edge the default folder was ``$DAGSTER_HOME/storage/qdrant``
        (qdrant-client local mode). An explicit ``location`` holding local-mode
        files is reported by the store itself.
        """
        if self.url or self.location:
            return None
        return settings.storage_root() / "qdrant"

    def sync_summary_path(self, collection: str) -> Path | None:
        """Where a clean sync of ``collection`` is summarised; embedded folder mode only.

        None when the collection's files are not in a local folder (server,
        ``:memory:``) or do not exist: the summary would then describe nothing.
        """
        path = self.storage_path()
        if path is None or not (path / "collections" / collection / SPEC_FILE).is_file():
            return None
        return path / "genai_assets_sync" / f"{collection}.json"

    def describe(self) -> str:
        """Where the index is, for metadata (no secrets)."""
        if self.url:
            return self.url
        return str(self.storage_path() or ":memory:")

    def connect(self) -> VectorStore:
        """A new open store; the caller closes it.

        Raises:
            LegacyStorageError: the previous version's embedded storage is still
                unmigrated; the message names the command that migrates it.
            IndexLockedError: another process holds a shard this step opens.
        """
        return open_store(
            self.url,
            self.api_key,
            ":memory:" if self.location == ":memory:" else self.storage_path(),
            self.legacy_storage_path(),
            self.timeout_s,
        )

    def search(
        self,
        queries: Sequence[str],
        encode: Callable[[list[str]], Any] | None,
        k: int = 5,
        mode: QueryMode = DEFAULT_QUERY_MODE,
        rrf_k: int = DEFAULT_RRF_K,
    ) -> list[list[Hit]]:
        """What readers get: the top ``k`` chunks behind the alias for each query.

        ``encode`` is the embedding model that built the live collection (not
        needed for ``mode="sparse"``). See :func:`genai_assets.rag.search.search`.
        """
        with self.open() as store:
            return search(store, self.collection, queries, encode, k, mode, rrf_k)

    @contextmanager
    def open(self) -> Iterator[VectorStore]:
        """An open store for the duration of the ``with`` block."""
        store = self.connect()
        try:
            yield store
        finally:
            store.close()

    @contextmanager
    def open_on_first_use(self) -> Iterator[Callable[[], VectorStore]]:
        """Like ``open()``, but the store opens when the block first asks for it.

        Yields a function that returns the store, opening it on its first call; it
        is closed at the end of the block if it was opened. A run that finds
        nothing to write never touches the index's files.
        """
        opened: list[VectorStore] = []
        lock = threading.Lock()

        def store() -> VectorStore:
            with lock:
                if not opened:
                    opened.append(self.connect())
                return opened[0]

        try:
            yield store
        finally:
            with lock:
                for each in opened:
                    each.close()
