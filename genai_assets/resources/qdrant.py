"""Qdrant as a resource: embedded local mode by default, a server in production."""

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
from pydantic import Field
from qdrant_client import QdrantClient

from genai_assets import settings


class QdrantLockedError(RuntimeError):
    """Another process holds the local Qdrant storage folder."""


class QdrantResource(dg.ConfigurableResource):
    """Where the vectors live.

    With no ``url``, Qdrant runs embedded in the step's process: ``location`` is a
    folder (default ``$DAGSTER_HOME/storage/qdrant``) or ``:memory:``. Only one
    process may open a folder at a time, so a client is opened inside a step and
    closed at its end, never held across steps. With ``url``, the same code talks
    to a Qdrant server; ``api_key`` should be ``dg.EnvVar("QDRANT_API_KEY")``.
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
        """The embedded storage folder, or None for a server or ``:memory:``."""
        if self.url or self.location == ":memory:":
            return None
        return Path(self.location) if self.location else settings.storage_root() / "qdrant"

    def sync_summary_path(self, collection: str) -> Path | None:
        """Where a clean sync of ``collection`` is summarised; embedded folder mode only.

        None when the collection's files are not in a local folder (server,
        ``:memory:``) or do not exist: the summary would then describe nothing.
        """
        path = self.storage_path()
        if path is None or not (path / "collection" / collection).is_dir():
            return None
        return path / "genai_assets_sync" / f"{collection}.json"

    def describe(self) -> str:
        """Where the index is, for metadata (no secrets)."""
        if self.url:
            return self.url
        return str(self.storage_path() or ":memory:")

    def connect(self) -> QdrantClient:
        """A new open client; the caller closes it.

        Raises:
            QdrantLockedError: another process holds the embedded storage folder.
        """
        if self.url:
            return QdrantClient(url=self.url, api_key=self.api_key, timeout=self.timeout_s)
        if self.location == ":memory:":
            return QdrantClient(location=":memory:")
        path = self.storage_path()
        path.mkdir(parents=True, exist_ok=True)
        try:
            return QdrantClient(path=str(path))
        except RuntimeError as error:
            if "already accessed" in str(error):
                raise QdrantLockedError(
                    f"the local Qdrant storage {path} is open in another process (a step "
                    "running in parallel, or `dagster dev` holding it); run the steps one "
                    "after another, or point the qdrant resource at a Qdrant server `url`"
                ) from error
            raise

    @contextmanager
    def open(self) -> Iterator[QdrantClient]:
        """An open client for the duration of the ``with`` block."""
        client = self.connect()
        try:
            yield client
        finally:
            client.close()

    @contextmanager
    def open_on_first_use(self) -> Iterator[Callable[[], QdrantClient]]:
        """Like ``open()``, but the client opens when the block first asks for it.

        Yields a function that returns the client, opening it on its first call;
        the client is closed at the end of the block if it was opened. Embedded
        Qdrant reads the whole storage when it opens (about 0.4 s for 5,000
        points): a run that needs it only to write opens it after the model's
        work, rather than while the model loads (both hold the GIL; overlapping
        them measured slower than one after the other).
        """
        opened: list[QdrantClient] = []
        lock = threading.Lock()

        def client() -> QdrantClient:
            with lock:
                if not opened:
                    opened.append(self.connect())
                return opened[0]

        try:
            yield client
        finally:
            with lock:
                for each in opened:
                    each.close()
