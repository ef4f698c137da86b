"""Where ``raw_documents`` keeps document texts: a local folder, or S3 in production."""

from pathlib import Path

import dagster as dg
from dagster_aws.s3 import S3Resource
from pydantic import Field

from genai_assets import settings
from genai_assets.io_managers.storage import LocalObjectStore, S3ObjectStore
from genai_assets.rag.snapshots import SnapshotStore


class DocumentStoreResource(dg.ConfigurableResource):
    """The content-addressed store of normalised document texts."""

    def open(self) -> SnapshotStore:
        """The store, ready to read and write."""
        raise NotImplementedError

    def describe(self) -> str:
        """Where the texts are, for metadata."""
        raise NotImplementedError


class LocalDocumentStore(DocumentStoreResource):
    """Texts as files in a local folder, by default under ``$DAGSTER_HOME/storage``."""

    root: str | None = Field(default=None, description="Folder; default under DAGSTER_HOME.")

    def _root(self) -> Path:
        return Path(self.root) if self.root else settings.storage_root() / "document_snapshots"

    def open(self) -> SnapshotStore:
        """A store over the local folder."""
        return SnapshotStore(LocalObjectStore(self._root()))

    def describe(self) -> str:
        """The folder."""
        return str(self._root())


class S3DocumentStore(DocumentStoreResource):
    """Texts as objects under an S3 prefix, shared by steps that run in separate pods."""

    s3: S3Resource = Field(description="The S3 connection (endpoint, region, credentials).")
    bucket: str = Field(description="Bucket the texts are stored in.")
    prefix: str = Field(default="genai_assets/document_snapshots", description="Key prefix.")
    create_bucket: bool = Field(default=False, description="Create a missing bucket.")

    def open(self) -> SnapshotStore:
        """A store over the bucket prefix."""
        return SnapshotStore(
            S3ObjectStore(
                self.s3.get_client(), self.bucket, self.prefix, create_bucket=self.create_bucket
            )
        )

    def describe(self) -> str:
        """The S3 URI of the prefix."""
        return f"s3://{self.bucket}/{self.prefix.strip('/')}"
