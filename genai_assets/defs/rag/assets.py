"""RAG ingestion: raw_documents -> document_embeddings."""

import dagster as dg
from pydantic import Field

from genai_assets.defs.automation.policies import (
    QDRANT_POOL,
    embedding_op_tags,
    external_call,
    external_retry_policy,
)
from genai_assets.defs.rag.metadata import qdrant_location, rag_asset, skipped_table
from genai_assets.rag.chunking import Chunker
from genai_assets.rag.documents import LOADER_VERSION
from genai_assets.rag.index import QdrantIndex
from genai_assets.rag.manifest import ManifestBuilder
from genai_assets.rag.model_files import load_tokenizer, model_revision
from genai_assets.rag.sources import SourceNotFoundError
from genai_assets.rag.sync import DocumentSync, IndexChangedError, SourceDocument
from genai_assets.rag.sync_report import SyncReport
from genai_assets.rag.sync_summary import SyncSummary
from genai_assets.rag.versioning import CHUNKER_VERSION, IngestSettings
from genai_assets.resources.document_store import DocumentStoreResource
from genai_assets.resources.documents import DocumentSourcesResource
from genai_assets.resources.embeddings import SentenceTransformerResource
from genai_assets.resources.qdrant import QdrantResource

# Code versions: bump the asset's own number when its code changes what it produces;
# the library constants move with the loader and the chunker. Run-time settings
# (model, chunk sizes) are versioned by the collection name instead.
RAW_DOCUMENTS_VERSION = f"1-loader{LOADER_VERSION}"
DOCUMENT_EMBEDDINGS_VERSION = f"1-chunker{CHUNKER_VERSION}"


class RawDocumentsConfig(dg.Config):
    """Run-time choices for raw_documents."""

    sources: list[str] = Field(
        default_factory=list,
        description="Override the document_sources resource for this run: folders, files, "
        "glob patterns, http(s) URLs, s3://bucket/prefix.",
    )


@rag_asset(
    stage="ingestion",
    kinds={"python", "text"},
    code_version=RAW_DOCUMENTS_VERSION,
    retry_policy=external_retry_policy(),  # URL and S3 sources
    description="The documents to index, read from their sources (folders, globs, URLs, S3), "
    "one row per document: stable id, source URI, content hash of the normalised text, "
    "title, format, encoding, size and modification time. Texts are kept in a "
    "content-addressed store; a file whose bytes did not change reuses its previous "
    "extraction. Inputs that cannot be read are listed with the reason and skipped; a "
    "document whose source is unavailable keeps its last version.",
)
def raw_documents(
    context: dg.AssetExecutionContext,
    config: RawDocumentsConfig,
    document_sources: DocumentSourcesResource,
    document_store: DocumentStoreResource,
) -> dg.MaterializeResult:
    """Read every source; keep texts by hash; return the manifest (no texts)."""
    sources = document_sources.resolved_sources(config.sources)
    manifest = ManifestBuilder(document_store.open(), sources, warn=context.log.warning)
    try:
        # A busy or unreachable URL or S3 source retries the step (honouring Retry-After).
        with external_call("document sources"):
            for item in document_sources.iter_documents(config.sources, manifest.previous_by_uri):
                manifest.add(item)
    except SourceNotFoundError as error:
        raise dg.Failure(description=str(error), allow_retries=False) from error
    skipped = manifest.skipped
    if not manifest.rows:
        # An empty manifest would delete the whole index downstream: refuse it. Retrying
        # reads the same sources again, so it fails at once and keeps the reason.
        raise dg.Failure(
            description=f"no readable document in sources {sources}; {len(skipped)} inputs "
            "skipped: " + "; ".join(f"{uri}: {reason}" for uri, reason in skipped[:5]),
            metadata={"skipped_inputs": skipped_table(skipped)},
            allow_retries=False,
        )
    pruned = manifest.finish()
    if manifest.not_ingested:
        # Every entry is named once, so a file that should have been indexed can be found.
        context.log.info(
            f"{len(manifest.not_ingested)} entries of the sources are not documents to ingest: "
            + "; ".join(f"{uri} ({reason})" for uri, reason in manifest.not_ingested)
        )
    rows = list(manifest.rows.values())
    return dg.MaterializeResult(
        value=rows,
        metadata={
            "documents": dg.MetadataValue.int(len(rows)),
            "skipped": dg.MetadataValue.int(len(skipped)),
            "unavailable": dg.MetadataValue.int(len(manifest.unavailable)),
            "not_ingested": dg.MetadataValue.int(len(manifest.not_ingested)),
            "texts_written": dg.MetadataValue.int(manifest.written),
            "extractions_reused": dg.MetadataValue.int(manifest.reused),
            "texts_pruned": dg.MetadataValue.int(pruned),
            "characters": dg.MetadataValue.int(sum(row["n_chars"] for row in rows)),
            "formats": dg.MetadataValue.json(manifest.counts("format")),
            "encodings": dg.MetadataValue.json(manifest.counts("encoding")),
            "sources": dg.MetadataValue.json(sources),
            "skipped_inputs": skipped_table(skipped),
            "unavailable_inputs": skipped_table(manifest.unavailable),
            "not_ingested_entries": skipped_table(manifest.not_ingested),
            "snapshot_store": dg.MetadataValue.path(document_store.describe()),
        },
    )


class DocumentEmbeddingsConfig(dg.Config):
    """Chunking settings; a change builds a new versioned collection."""

    chunk_tokens: int = Field(
        default=256,
        gt=8,
        description="Most model tokens per chunk; capped at what the model embeds "
        "(its max_seq_length minus special tokens).",
    )
    overlap_tokens: int = Field(
        default=32, ge=0, description="Tokens repeated where a paragraph had to be cut."
    )
    contextual: bool = Field(
        default=True,
        description="Embed each chunk with its document title and section heading path in "
        "front (the stored text is unchanged; the prefix counts against the token limit). "
        "Measured on python3-doc: MRR@10 0.847 with, 0.820 without (bench/README.md).",
    )
    batch_chunks: int = Field(
        default=512,
        gt=0,
        description="Chunks embedded and written per batch; bounds memory. Within a batch "
        "chunks are grouped by token length, so a larger batch pads less.",
    )


@rag_asset(
    stage="ingestion",
    kinds={"qdrant", "sentence_transformers"},
    code_version=DOCUMENT_EMBEDDINGS_VERSION,
    retry_policy=external_retry_policy(),
    pool=QDRANT_POOL,
    op_tags=embedding_op_tags(),
    description="Chunks of every document, embedded and stored in Qdrant with a BM25 sparse "
    "vector beside each embedding (hybrid search). Incremental: "
    "unchanged documents are skipped without loading the model, only new chunk texts are "
    "embedded, and vanished chunks and documents are deleted, so the collection always "
    "holds exactly the chunks of the current documents. Point ids derive from document, "
    "settings and chunk text, so reruns never duplicate.",
)
def document_embeddings(
    context: dg.AssetExecutionContext,
    config: DocumentEmbeddingsConfig,
    raw_documents: list[dict],
    embedder: SentenceTransformerResource,
    qdrant: QdrantResource,
    document_store: DocumentStoreResource,
) -> dg.MaterializeResult:
    """Sync the versioned collection for the current settings with raw_documents."""
    chunk_tokens = min(config.chunk_tokens, embedder.max_chunk_tokens())
    # The device and dtype are part of the collection's version, so they are decided
    # first: from configuration or this machine's earlier decision (no model load),
    # else by probing the model, which is then used for the embedding too.
    precision, probed = embedder.decide_precision()
    revision = model_revision(embedder.model)
    ingest = IngestSettings(
        embedder.model,
        chunk_tokens,
        config.overlap_tokens,
        model_revision=revision,
        device=precision.device,
        dtype=precision.dtype,
        contextual=config.contextual,
    )
    fingerprint = ingest.fingerprint()
    collection = f"{qdrant.collection}-{fingerprint}"
    store = document_store.open()
    docs = [
        SourceDocument(row["doc_id"], row["uri"], row["content_hash"], row.get("title"))
        for row in raw_documents
    ]

    def read_text(doc: SourceDocument) -> str:
        return store.get(doc.content_hash)

    summary_path = qdrant.sync_summary_path(collection)
    summary = SyncSummary(summary_path) if summary_path else None
    known_points = summary.unchanged_points(fingerprint, docs) if summary else None
    if known_points is not None:
        # The last clean sync left exactly these documents: nothing to open or embed.
        report = SyncReport(documents_unchanged=len(docs))
        points = known_points
    else:
        indexed = summary.indexed(fingerprint) if summary else None
        if summary:
            summary.invalidate()
        with qdrant.open_on_first_use() as vector_store:
            index = QdrantIndex(vector_store, collection, sparse=ingest.sparse_model is not None)
            sync = DocumentSync(
                index,
                ingest,
                chunker_factory=lambda: Chunker(
                    load_tokenizer(embedder.model),
                    chunk_tokens,
                    config.overlap_tokens,
                    contextual=config.contextual,
                ),
                embedder_factory=lambda: probed or embedder.load(precision),
                read_text=read_text,
                batch_chunks=config.batch_chunks,
                report=context.log.info,
            )
            try:
                report = sync.run(docs, indexed)
            except IndexChangedError as error:
                context.log.warning(f"{error}; reading its own state instead of the sync summary")
                report = sync.run(docs)
            points = index.count() if index.exists() else 0
        summary_path = qdrant.sync_summary_path(collection)  # the first run creates the folder
        if summary_path and not report.skipped:
            SyncSummary(summary_path).save(fingerprint, docs, report.document_points)
    for uri, reason in report.skipped:
        context.log.warning(f"skipped {uri}: {reason}")
    context.log.info(f"{collection}: {report.summary()}")
    value = {
        "collection": collection,
        "alias": qdrant.collection,
        "location": qdrant.describe(),
        "settings_fingerprint": fingerprint,
        "model": embedder.model,
        "model_revision": revision,
        "device": precision.device,
        "dtype": precision.dtype,
        "chunk_tokens": chunk_tokens,
        "overlap_tokens": config.overlap_tokens,
        "points": points,
        "documents": len(docs) - len(report.skipped),
    }
    metadata = {
        "collection": collection,
        "model": embedder.model,
        "qdrant": qdrant_location(qdrant, collection),
        "points": dg.MetadataValue.int(points),
        "documents_new": dg.MetadataValue.int(report.documents_new),
        "documents_changed": dg.MetadataValue.int(report.documents_changed),
        "documents_unchanged": dg.MetadataValue.int(report.documents_unchanged),
        "documents_deleted": dg.MetadataValue.int(report.documents_deleted),
        "documents_skipped": dg.MetadataValue.int(len(report.skipped)),
        "chunks_embedded": dg.MetadataValue.int(report.chunks_embedded),
        "chunks_reused": dg.MetadataValue.int(report.chunks_reused),
        "chunks_deduplicated": dg.MetadataValue.int(report.chunks_deduplicated),
        "chunks_deleted": dg.MetadataValue.int(report.chunks_deleted),
        # A setting, not a measurement: text, so the UI does not plot it.
        "chunk_tokens": dg.MetadataValue.text(str(chunk_tokens)),
        "model_loaded": dg.MetadataValue.bool(report.model_loaded or probed is not None),
        "index_opened": dg.MetadataValue.bool(known_points is None),
        "skipped_inputs": skipped_table(report.skipped),
        "model_revision": revision,
        "dtype": f"{precision.dtype} ({precision.reason})",
        "device": precision.device,
    }
    # Rates exist only where there was work: a run that read or embedded nothing plots no point.
    if report.chunks_per_second is not None:
        # Rounded as the log line shows it (report.summary()), so the two read the same.
        metadata["chunks_per_second"] = dg.MetadataValue.float(round(report.chunks_per_second, 1))
    if report.token_coverage is not None:
        metadata["token_coverage"] = dg.MetadataValue.float(round(report.token_coverage, 6))
    return dg.MaterializeResult(value=value, metadata=metadata)
