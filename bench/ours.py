"""Our side of the benchmark: the RAG pipeline through ``dg.materialize``, and a bare encode.

``run_pipeline`` materializes ``raw_documents`` and ``document_embeddings`` (the
code in ``genai_assets.defs.rag.assets``, with the resources ``make run`` binds)
against a Dagster instance and local Qdrant under the phase's state folder, so
state carries over from the full ingest to the reruns. ``run_bare_encode`` is the
ceiling the pipeline is measured against: ``SentenceTransformer.encode`` of the
same chunks, loaded and cast exactly as the pipeline's ``Embedder`` does, with
nothing around it.
"""

import os
import shutil
import time
from pathlib import Path

from bench.token_share import ChunkSpan, TokenShare, add_document

REPO_ROOT = Path(__file__).resolve().parent.parent


def _metadata_values(result, asset: str) -> dict:
    for event in result.get_asset_materialization_events():
        materialization = event.event_specific_data.materialization
        if materialization.asset_key.to_user_string() == asset:
            return {
                key: getattr(value, "value", value)
                for key, value in materialization.metadata.items()
            }
    raise LookupError(f"no materialization of {asset} in run {result.run_id}")


def _step_durations(instance, run_id: str) -> dict[str, float]:
    """Seconds from STEP_START to STEP_SUCCESS of every step, from the run's event log."""
    import dagster as dg

    starts: dict[str, float] = {}
    durations: dict[str, float] = {}
    for record in instance.all_logs(
        run_id, of_type={dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS}
    ):
        event = record.dagster_event
        if event.event_type == dg.DagsterEventType.STEP_START:
            starts[event.step_key] = record.timestamp
        else:
            durations[event.step_key] = record.timestamp - starts[event.step_key]
    return durations


def _pipeline_chunker():
    """The chunker document_embeddings builds at its defaults (contextual chunks included)."""
    from genai_assets.defs.rag.assets import DocumentEmbeddingsConfig
    from genai_assets.rag.chunking import Chunker
    from genai_assets.rag.model_files import PACKAGED_MODEL, load_tokenizer, max_chunk_tokens

    defaults = DocumentEmbeddingsConfig()
    return Chunker(
        load_tokenizer(PACKAGED_MODEL),
        min(defaults.chunk_tokens, max_chunk_tokens(PACKAGED_MODEL)),
        defaults.overlap_tokens,
        contextual=defaults.contextual,
    )


def _count_expected_chunks(corpus_root: Path) -> int:
    """Chunks of the current documents, with the pipeline's own loader and chunker."""
    from genai_assets.rag.documents import Document, iter_documents

    chunker = _pipeline_chunker()
    return sum(
        len(chunker.chunk(item.text, item.title))
        for item in iter_documents([str(corpus_root)])
        if isinstance(item, Document)
    )


def run_pipeline(spec: dict, phase: str) -> dict:
    """One ``dg.materialize`` of raw_documents + document_embeddings."""
    state_dir = Path(spec["state_dir"])
    home = state_dir / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home)

    preimport_s = 0.0
    if phase != "unchanged" and spec.get("preimport", True):
        # The peers' imports (torch, sentence-transformers) happen before their timers;
        # the pipeline imports them lazily inside the step. Import them here too, so
        # both sides are timed without imports. Not for the unchanged rerun, which
        # must show that nothing is loaded at all.
        mark = time.perf_counter()
        import sentence_transformers  # noqa: F401

        preimport_s = time.perf_counter() - mark

    import dagster as dg

    from genai_assets.defs.rag.assets import document_embeddings, raw_documents
    from genai_assets.defs.resources import build_resources
    from genai_assets.resources.documents import DocumentSourcesResource
    from genai_assets.resources.embeddings import SentenceTransformerResource

    resources = {
        **build_resources("local"),
        "document_sources": DocumentSourcesResource(sources=[spec["corpus_root"]]),
        "embedder": SentenceTransformerResource(dtype=spec["dtype"], batch_size=spec["batch_size"]),
    }
    with dg.DagsterInstance.get() as instance:
        started = time.perf_counter()
        result = dg.materialize(
            [raw_documents, document_embeddings], resources=resources, instance=instance
        )
        wall = time.perf_counter() - started
        if not result.success:
            raise RuntimeError(f"run {result.run_id} failed")
        steps = _step_durations(instance, result.run_id)
    metadata = _metadata_values(result, "document_embeddings")
    dtype = metadata.get("dtype")
    outcome = {
        "wall_s": wall,
        "steps_s": sum(steps.values()),
        "step_durations_s": steps,
        "chunks_embedded": metadata["chunks_embedded"],
        "chunks_total": metadata["points"],
        "points": metadata["points"],
        "dtype": dtype.split(" ")[0] if dtype else None,
        "dtype_decision": dtype,
        "model_loaded": metadata["model_loaded"],
        "preimport_s": preimport_s,
        "embed_s": (
            metadata["chunks_embedded"] / metadata["chunks_per_second"]
            if metadata.get("chunks_per_second")
            else 0.0
        ),
        "metadata": {
            key: value
            for key, value in metadata.items()
            if isinstance(value, int | float | str | bool) and key != "skipped_inputs"
        },
        "raw_documents_metadata": {
            key: value
            for key, value in _metadata_values(result, "raw_documents").items()
            if isinstance(value, int | float)
        },
    }
    if metadata["model_loaded"] or phase == "full":
        outcome["token_share"] = {"share": metadata["token_coverage"], "source": "metadata"}
    if spec.get("verify", True):
        expected = _count_expected_chunks(Path(spec["corpus_root"]))
        outcome["expected_points"] = expected
        if expected != metadata["points"]:
            raise AssertionError(
                f"{phase}: the collection holds {metadata['points']} points, the current "
                f"documents have {expected} chunks"
            )
    return outcome


def run_bare_encode(spec: dict, phase: str) -> dict:
    """``SentenceTransformer.encode`` of our chunker's chunks of the corpus, nothing else."""
    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer

    from genai_assets.rag.documents import Document, iter_documents
    from genai_assets.rag.embedder import Embedder
    from genai_assets.rag.model_files import PACKAGED_MODEL

    dtype = spec["dtype"]
    if dtype == "auto":  # decide exactly as the pipeline does
        dtype = Embedder(PACKAGED_MODEL, "cpu", "auto", spec["batch_size"]).dtype
    chunker = _pipeline_chunker()
    documents = [
        item for item in iter_documents([spec["corpus_root"]]) if isinstance(item, Document)
    ]
    chunked = [(doc.text, chunker.chunk(doc.text, doc.title)) for doc in documents]
    # What the model reads: the contextual prefix, then the chunk text.
    texts = [chunk.embed_text for _, chunks in chunked for chunk in chunks]

    model = SentenceTransformer(spec["model_path"], device="cpu")
    torch_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
    model.to(torch_dtype)
    started = time.perf_counter()
    vectors = model.encode(
        texts,
        batch_size=spec["batch_size"],
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    wall = time.perf_counter() - started
    vectors = np.asarray(vectors, dtype=np.float32)

    # The same measurement as for the peers, on our chunks (not our metadata's figure).
    share = TokenShare()
    for text, chunks in chunked:
        spans = [ChunkSpan(chunk.start_char, chunk.end_char) for chunk in chunks]
        add_document(share, model.tokenizer, model.max_seq_length, text, spans)
    return {
        "wall_s": wall,
        "chunks_embedded": len(texts),
        "chunks_total": len(texts),
        "unique_texts": len(set(texts)),
        "dtype": dtype,
        "vector_shape": list(vectors.shape),
        "token_share": share.as_dict(),
    }
