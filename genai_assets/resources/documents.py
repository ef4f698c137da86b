"""Where documents come from, as a resource shared by ``raw_documents`` and the sensors."""

from collections.abc import Iterator, Mapping
from typing import Any

import dagster as dg
from pydantic import Field

from genai_assets import settings
from genai_assets.automation.retries import RetrySettings
from genai_assets.rag import documents
from genai_assets.rag.sources import DEFAULT_INCLUDE, SkippedInput, SourceEntry, iter_source_entries


class DocumentSourcesResource(dg.ConfigurableResource):
    """The document sources: local folders, files and glob patterns, http(s) URLs, S3 prefixes.

    S3 credentials come from the standard AWS environment variables or instance
    role; ``s3_endpoint_url`` points at an S3-compatible store.
    """

    sources: list[str] = Field(
        default_factory=list,
        description="Folders, files, glob patterns, http(s) URLs or s3://bucket/prefix. "
        "Empty: the sample corpus shipped with the package.",
    )
    include: list[str] = Field(
        default_factory=lambda: list(DEFAULT_INCLUDE),
        description="Glob patterns that select files inside folders and S3 prefixes.",
    )
    max_file_bytes: int = Field(
        default=documents.DEFAULT_MAX_BYTES, gt=0, description="Larger inputs are skipped."
    )
    http_timeout_s: float = Field(default=30.0, gt=0, description="Timeout for URL sources.")
    s3_endpoint_url: str | None = Field(
        default=None, description="S3-compatible endpoint for s3:// sources (None: AWS)."
    )
    optional_sources: list[str] = Field(
        default_factory=list,
        description="Sources (written as in `sources`) whose outage does not fail the run: "
        "after `optional_attempts` tries their documents keep their last indexed version "
        "and are reported unavailable. Other sources fail the run on an outage (after the "
        "step's retries); only a source that says a document is gone deletes it.",
    )
    optional_attempts: int = Field(
        default=3, ge=1, description="Reads of an optional source before it counts unavailable."
    )
    optional_backoff_s: float = Field(
        default=1.0, ge=0, description="First wait between reads of an optional source; doubles."
    )

    def resolved_sources(self, override: list[str] | None = None) -> list[str]:
        """The sources a run reads: ``override`` if given, else configured, else the sample."""
        return list(override or self.sources or [str(settings.SAMPLE_CORPUS_DIR)])

    def s3_client(self, sources: list[str]) -> Any:
        """A boto3 S3 client when any source is on S3, else None."""
        if not any(source.startswith("s3://") for source in sources):
            return None
        import boto3

        return boto3.client("s3", endpoint_url=self.s3_endpoint_url)

    def iter_documents(
        self,
        override: list[str] | None = None,
        previous: Mapping[str, dict[str, Any]] | None = None,
    ) -> Iterator[documents.Document | documents.UnchangedDocument | SkippedInput]:
        """Every document of the sources, loaded one at a time.

        ``previous`` (URI -> last manifest row) lets unchanged inputs skip parsing.
        """
        sources = self.resolved_sources(override)
        yield from documents.iter_documents(
            sources,
            include=self.include,
            max_bytes=self.max_file_bytes,
            s3_client=self.s3_client(sources),
            http_timeout_s=self.http_timeout_s,
            previous=dict(previous or {}),
            optional_sources=frozenset(self.optional_sources),
            retry=RetrySettings(self.optional_attempts, self.optional_backoff_s),
        )

    def iter_entries(self, override: list[str] | None = None) -> Iterator[SourceEntry]:
        """Every candidate document without reading it (for sensors)."""
        sources = self.resolved_sources(override)
        client = self.s3_client(sources)
        for source in sources:
            for entry in iter_source_entries(source, self.include, client, self.http_timeout_s):
                if isinstance(entry, SourceEntry):
                    yield entry
