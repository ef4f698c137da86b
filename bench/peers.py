"""The peer systems: LangChain ``index()`` and LlamaIndex ``IngestionPipeline``.

Each function runs ONE phase of one system in the current process (the harness
starts a fresh process per phase, as a scheduled rerun would be) and returns a
JSON-compatible result. State (Qdrant local storage, record manager, docstore)
lives under ``state_dir`` and carries over between phases. Each peer is set up
the way its documentation shows, at its defaults, except for the batch size,
which is the benchmark's (64) for every system.
"""

import logging
import time
from pathlib import Path

from bench.token_share import ChunkSpan, TokenShare, add_document, locate_chunks

COLLECTION = "bench"
# LangChain's RecursiveCharacterTextSplitter class defaults are 4,000 characters
# with 200 overlap; its RAG tutorial, and most users, use 1,000 with 200 overlap.
# The harness passes the tutorial setting unless told otherwise.
LANGCHAIN_TUTORIAL_CHUNK_SIZE = 1000
LANGCHAIN_TUTORIAL_CHUNK_OVERLAP = 200
# LlamaIndex's SentenceSplitter defaults (1,024 tokens, 200 overlap) make chunks four
# times longer than the model reads (256 wordpieces), so three quarters of the text is
# never embedded. The "llamaindex-sized" system sizes its chunks to the model instead,
# for a comparison at (nearly) equal work: 192 tiktoken tokens plus the metadata
# LlamaIndex prepends fit 256 wordpieces on reST, with the default's overlap ratio.
LLAMAINDEX_SIZED_CHUNK_SIZE = 192
LLAMAINDEX_SIZED_CHUNK_OVERLAP = 38


def _torch_dtype(dtype: str):
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype]


def _qdrant_client(state_dir: Path):
    from qdrant_client import QdrantClient

    return QdrantClient(path=str(state_dir / "qdrant"))


def _read_documents(corpus_root: Path) -> list[tuple[str, str]]:
    """(relative path, text) of every file, sorted: what TextLoader would read."""
    return [
        (str(path.relative_to(corpus_root)), path.read_text(encoding="utf-8"))
        for path in sorted(corpus_root.rglob("*"))
        if path.is_file()
    ]


def run_langchain(spec: dict, phase: str) -> dict:
    """LangChain ``index()`` with ``cleanup="full"`` into ``QdrantVectorStore`` (local path)."""
    # Imported here, not inside HuggingFaceEmbeddings(), so the import is not timed.
    import sentence_transformers  # noqa: F401
    from langchain_classic.indexes import SQLRecordManager
    from langchain_community.embeddings import HuggingFaceEmbeddings
    from langchain_core.documents import Document
    from langchain_core.indexing import index
    from langchain_qdrant import QdrantVectorStore
    from langchain_text_splitters import RecursiveCharacterTextSplitter
    from qdrant_client.models import Distance, VectorParams

    state_dir = Path(spec["state_dir"])
    corpus_root = Path(spec["corpus_root"])
    timings: dict[str, float] = {}
    started = time.perf_counter()

    model_kwargs = {"device": "cpu"}
    if spec["peer_dtype"] != "fp32":
        model_kwargs["model_kwargs"] = {"torch_dtype": _torch_dtype(spec["peer_dtype"])}
    # langchain-huggingface's HuggingFaceEmbeddings is the same class, but every
    # release caps huggingface-hub below the version this project pins, so the
    # benchmark uses the langchain-community one (identical encode path).
    embeddings = HuggingFaceEmbeddings(
        model_name=spec["model_path"],
        model_kwargs=model_kwargs,
        encode_kwargs={"batch_size": spec["batch_size"]},
    )
    timings["model_load_s"] = time.perf_counter() - started

    client = _qdrant_client(state_dir)
    if not client.collection_exists(COLLECTION):
        dimension = embeddings.client.get_sentence_embedding_dimension()
        client.create_collection(
            COLLECTION, vectors_config=VectorParams(size=dimension, distance=Distance.COSINE)
        )
    store = QdrantVectorStore(client=client, collection_name=COLLECTION, embedding=embeddings)
    record_manager = SQLRecordManager(
        f"qdrant/{COLLECTION}", db_url=f"sqlite:///{state_dir / 'record_manager.sqlite'}"
    )
    record_manager.create_schema()

    mark = time.perf_counter()
    documents = [
        Document(page_content=text, metadata={"source": source})
        for source, text in _read_documents(corpus_root)
    ]
    splitter = RecursiveCharacterTextSplitter(
        chunk_size=spec["langchain_chunk_size"], chunk_overlap=spec["langchain_chunk_overlap"]
    )
    chunks = splitter.split_documents(documents)
    timings["read_split_s"] = time.perf_counter() - mark

    mark = time.perf_counter()
    outcome = index(chunks, record_manager, store, cleanup="full", source_id_key="source")
    timings["index_s"] = time.perf_counter() - mark
    wall = time.perf_counter() - started
    points = client.count(COLLECTION, exact=True).count
    client.close()

    result = {
        "wall_s": wall,
        "chunks_embedded": outcome["num_added"] + outcome["num_updated"],
        "chunks_total": len(chunks),
        "points": points,
        "dtype": spec["peer_dtype"],
        "timings": timings,
        "indexing_result": dict(outcome),
        "splitter": (
            f"RecursiveCharacterTextSplitter(chunk_size={spec['langchain_chunk_size']}, "
            f"chunk_overlap={spec['langchain_chunk_overlap']})"
        ),
    }
    if phase == "full":
        by_source: dict[str, list[str]] = {}
        for chunk in chunks:
            by_source.setdefault(chunk.metadata["source"], []).append(chunk.page_content)
        share = TokenShare()
        tokenizer = embeddings.client.tokenizer
        max_seq_length = embeddings.client.max_seq_length
        for document in documents:
            source = document.metadata["source"]
            text = document.page_content
            add_document(
                share,
                tokenizer,
                max_seq_length,
                text,
                locate_chunks(text, by_source.get(source, [])),
            )
        result["token_share"] = share.as_dict()
    return result


def run_llamaindex(spec: dict, phase: str) -> dict:
    """LlamaIndex ``IngestionPipeline`` with a docstore, ``UPSERTS_AND_DELETE``, Qdrant local."""
    from llama_index.core import SimpleDirectoryReader
    from llama_index.core.ingestion import DocstoreStrategy, IngestionPipeline
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.core.schema import MetadataMode
    from llama_index.core.storage.docstore import SimpleDocumentStore
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from llama_index.vector_stores.qdrant import QdrantVectorStore

    state_dir = Path(spec["state_dir"])
    corpus_root = Path(spec["corpus_root"])
    persist_dir = state_dir / "pipeline_storage"
    timings: dict[str, float] = {}
    started = time.perf_counter()

    model_kwargs = {}
    if spec["peer_dtype"] != "fp32":
        model_kwargs["model_kwargs"] = {"torch_dtype": _torch_dtype(spec["peer_dtype"])}
    embed_model = HuggingFaceEmbedding(
        model_name=spec["model_path"],
        embed_batch_size=spec["batch_size"],
        device="cpu",
        **model_kwargs,
    )
    timings["model_load_s"] = time.perf_counter() - started

    client = _qdrant_client(state_dir)
    vector_store = QdrantVectorStore(client=client, collection_name=COLLECTION)
    sized = spec.get("llamaindex_sized", False)
    splitter = (
        SentenceSplitter(
            chunk_size=LLAMAINDEX_SIZED_CHUNK_SIZE, chunk_overlap=LLAMAINDEX_SIZED_CHUNK_OVERLAP
        )
        if sized
        else SentenceSplitter()
    )
    pipeline = IngestionPipeline(
        transformations=[splitter, embed_model],
        vector_store=vector_store,
        docstore=SimpleDocumentStore(),
        docstore_strategy=DocstoreStrategy.UPSERTS_AND_DELETE,
    )
    if persist_dir.exists():
        pipeline.load(str(persist_dir))

    mark = time.perf_counter()
    documents = SimpleDirectoryReader(
        input_dir=str(corpus_root), recursive=True, filename_as_id=True
    ).load_data()
    timings["read_s"] = time.perf_counter() - mark

    mark = time.perf_counter()
    nodes = pipeline.run(documents=documents)
    timings["run_s"] = time.perf_counter() - mark
    mark = time.perf_counter()
    pipeline.persist(str(persist_dir))
    timings["persist_s"] = time.perf_counter() - mark
    wall = time.perf_counter() - started
    points = (
        client.count(COLLECTION, exact=True).count if client.collection_exists(COLLECTION) else 0
    )
    client.close()

    result = {
        "wall_s": wall,
        "chunks_embedded": len(nodes),
        "chunks_total": points,
        "points": points,
        "dtype": spec["peer_dtype"],
        "timings": timings,
        "splitter": (
            f"SentenceSplitter(chunk_size={splitter.chunk_size}, "
            f"chunk_overlap={splitter.chunk_overlap})"
        ),
    }
    if phase == "full":
        tokenizer = embed_model._model.tokenizer
        max_seq_length = embed_model._model.max_seq_length
        by_document: dict[str, list] = {}
        for node in nodes:
            by_document.setdefault(node.ref_doc_id, []).append(node)
        share = TokenShare()
        for document in documents:
            text = document.get_content(metadata_mode=MetadataMode.NONE)
            spans: list[ChunkSpan | None] = []
            for node in by_document.get(document.doc_id, []):
                content = node.get_content(metadata_mode=MetadataMode.NONE)
                embedded = node.get_content(metadata_mode=MetadataMode.EMBED)
                prefix = embedded[: max(embedded.find(content), 0)]
                prefix_tokens = len(tokenizer(prefix, add_special_tokens=False)["input_ids"])
                if node.start_char_idx is not None and node.end_char_idx is not None:
                    located = ChunkSpan(node.start_char_idx, node.end_char_idx)
                else:
                    located = locate_chunks(text, [content])[0]
                spans.append(
                    None
                    if located is None
                    else ChunkSpan(located.start, located.end, prefix_tokens)
                )
            add_document(share, tokenizer, max_seq_length, text, spans)
        result["token_share"] = share.as_dict()
    logging.getLogger(__name__).info("llamaindex %s: %s", phase, result)
    return result
