"""Retrieval benchmark: does the right page come back? Ours against LangChain and LlamaIndex.

Issue 17's benchmark. Questions written over python3-doc's reST sources
(``bench/retrieval_questions.jsonl``: each names the page(s) that answer it) are
asked of every system, built on the same corpus files with the same model (the
packaged all-MiniLM-L6-v2) at the same dtype:

* ``ours-dense``: our chunker and ``Embedder`` into the project's ``EdgeStore``
  (through ``QdrantIndex``, as the pipeline writes it), asked through
  ``genai_assets.rag.search.search``, as readers ask it; cosine search.
* ``ours-hybrid``: the same chunks with a BM25 sparse vector (``qdrant_edge.Bm25``),
  dense and sparse prefetched and fused by RRF.
* ``ours-hybrid-contextual``: as hybrid, but the text the model (and BM25) reads
  is the document title and the chunk's heading path, then the chunk text.
* ``langchain``: ``RecursiveCharacterTextSplitter(1000, 200)`` + ``QdrantVectorStore``
  (qdrant-client local mode) + ``HuggingFaceEmbeddings``, dense.
* ``llamaindex``: ``IngestionPipeline`` defaults (``SentenceSplitter()`` +
  ``HuggingFaceEmbedding``) into ``QdrantVectorStore``, its retriever.
* ``langchain-chunks-hybrid``: LangChain's chunks in our index with our hybrid
  query: what chunking alone does (the reference).

A retrieved chunk is relevant when it comes from an answer page
(``genai_assets.rag.evaluation.retrieval_metrics``: hit@5, recall@5 over pages, MRR@10, nDCG@10
with a page counted once). Latency is per question, end to end (embedding the
question and searching) and for the search alone, after one warm-up query.
``--chunk-tokens 128 192 254`` and ``--overlap-tokens`` run every ``ours*`` system
at each setting; ``--rrf-k`` and ``--weights`` query every hybrid ``ours*`` index at
each (the index is built once). Every score is also given over the questions on
even line numbers (the half settings are tuned on) and the odd ones (held out).

Prints one table and the targets, writes everything (per-question ranks included)
as JSON to ``bench/results/``. It is a benchmark, not a test.
"""

import argparse
import datetime
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.corpus import Corpus, copy_corpus, select_corpus  # noqa: E402
from bench.peers import (  # noqa: E402
    LANGCHAIN_TUTORIAL_CHUNK_OVERLAP,
    LANGCHAIN_TUTORIAL_CHUNK_SIZE,
    _torch_dtype,
)
from genai_assets.rag.evaluation.golden_set import GoldenQuestion, load_golden_set  # noqa: E402
from genai_assets.rag.evaluation.retrieval_metrics import (  # noqa: E402
    RetrievedChunk,
    retrieval_scores,
)
from genai_assets.rag.vector_store import (  # noqa: E402
    DEFAULT_RRF_K,
    DEFAULT_WEIGHTS,
    prefetch_limit,  # noqa: E402
)

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "bench" / "results"
QUESTIONS = REPO_ROOT / "bench" / "retrieval_questions.jsonl"
OURS = ("ours-dense", "ours-hybrid", "ours-hybrid-contextual")
PEERS = ("langchain", "llamaindex")
REFERENCE = "langchain-chunks-hybrid"
SYSTEMS = (*OURS, *PEERS, REFERENCE)
TOP_K = 10  # results fetched; hit and recall read the first 5, MRR and nDCG all 10
HIT_K = 5
SHORT_CHARS = 200
# Issue 17's targets.
MRR_MARGIN_OVER_PEERS = 0.08
QUERY_P50_MS = 20.0


@dataclass
class Chunks:
    """What a system indexes: the stored texts, what the model reads, their sources."""

    texts: list[str]
    sources: list[str]
    contexts: list[str] | None = None
    embed_token_ids: list[Sequence[int]] | None = None

    def read_by_model(self) -> list[str]:
        """The contextual prefix (if any), then the text: what the model and BM25 read."""
        if self.contexts is None:
            return self.texts
        return [context + text for context, text in zip(self.contexts, self.texts, strict=True)]


@dataclass(frozen=True)
class QuerySettings:
    """How a system asks its index: the mode, and for hybrid RRF's k and weights."""

    mode: str
    rrf_k: int = DEFAULT_RRF_K
    weights: tuple[float, float] | None = None

    def label(self) -> str:
        weights = ":".join(f"{w:g}" for w in self.weights) if self.weights else "1:1"
        return f"[k={self.rrf_k},w={weights}]"


@dataclass
class SystemResult:
    name: str
    chunks: int
    median_chars: float
    short_chunks: int
    build_s: float
    latencies_ms: list[float] = field(default_factory=list)
    search_ms: list[float] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)

    def summary(self, tuning: set[str]) -> dict:
        """The means over all questions, and over the tuning half and the held-out half."""

        def mean(key: str, half: bool | None = None) -> float:
            values = [
                row[key] for row in self.rows if half is None or (row["id"] in tuning) == half
            ]
            return statistics.fmean(values) if values else 0.0

        ordered = sorted(self.latencies_ms)
        search = sorted(self.search_ms)
        return {
            "system": self.name,
            "chunks": self.chunks,
            "median_chars": self.median_chars,
            f"chunks_under_{SHORT_CHARS}_chars": self.short_chunks,
            "hit_at_5": mean("hit_at_5"),
            "recall_at_5": mean("recall_at_5"),
            "mrr_at_10": mean("mrr_at_10"),
            "ndcg_at_10": mean("ndcg_at_10"),
            "mrr_at_10_tuning": mean("mrr_at_10", True),
            "mrr_at_10_held_out": mean("mrr_at_10", False),
            "hit_at_5_tuning": mean("hit_at_5", True),
            "hit_at_5_held_out": mean("hit_at_5", False),
            "p50_ms": _percentile(ordered, 50),
            "p95_ms": _percentile(ordered, 95),
            "search_p50_ms": _percentile(search, 50),
            "search_p95_ms": _percentile(search, 95),
            "build_s": self.build_s,
        }


def _percentile(ordered: list[float], percent: float) -> float:
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, round(percent / 100 * (len(ordered) - 1))))
    return ordered[index]


def tuning_ids(path: Path) -> set[str]:
    """The ids of the questions on even line numbers: the half any setting is tuned on.

    A default chosen on this half must also hold on the other (odd lines), so the
    questions cannot leak into the settings unseen.
    """
    ids = set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if number % 2 == 0 and line.strip():
            try:
                ids.add(str(json.loads(line)["id"]))
            except (json.JSONDecodeError, KeyError, TypeError):
                continue  # load_golden_set reported it and left it out of the questions
    return ids


def score_question(question: GoldenQuestion, sources: list[str]) -> dict:
    """The metrics of one question's ranked sources (one entry per retrieved chunk)."""
    chunks = [RetrievedChunk(source=source, text="", score=0.0) for source in sources]
    at_5 = retrieval_scores(question, chunks, HIT_K)
    at_10 = retrieval_scores(question, chunks, TOP_K)
    return {
        "id": question.id,
        "hit_at_5": at_5["hit_rate_at_k"],
        "recall_at_5": at_5["recall_at_k"],
        "mrr_at_10": at_10["mrr"],
        "ndcg_at_10": at_10["ndcg_at_k"],
        "relevant_ranks": at_10["relevant_ranks"],
        "top": sources[:HIT_K],
    }


# --- The index: the project's own store and search function ------------------------


def build_index(root: Path, name: str, chunks: Chunks, vectors) -> None:
    """Write the chunks as the pipeline does (``QdrantIndex`` on an ``EdgeStore``), then close.

    The payload holds what BM25 reads (the contextual prefix and the text, as in
    ``rag.sync``), the source page and, as its ``doc_id``, the page again (search
    keeps one chunk per document by default); closing builds the shard's indexes, as after a
    pipeline run, so the questions are asked of the index readers open.
    """
    from genai_assets.rag.edge_store import EdgeStore
    from genai_assets.rag.index import QdrantIndex
    from genai_assets.rag.versioning import point_id

    contexts = chunks.contexts or [""] * len(chunks.texts)
    store = EdgeStore(root)
    try:
        index = QdrantIndex(store, name)
        for start in range(0, len(chunks.texts), 1000):
            rows = range(start, min(start + 1000, len(chunks.texts)))
            index.upsert(
                [point_id(chunks.sources[i], name, chunks.texts[i], i) for i in rows],
                vectors[start : rows.stop],
                [
                    {
                        "doc_id": chunks.sources[i],
                        "source": chunks.sources[i],
                        "text": chunks.texts[i],
                        "context": contexts[i],
                    }
                    for i in rows
                ],
            )
    finally:
        store.close()


# --- Chunking -----------------------------------------------------------------------


def our_documents(root: Path) -> list:
    """The corpus as our pipeline loads it (normalised text, title), sorted by path."""
    from genai_assets.rag.documents import Document, iter_documents

    documents = [item for item in iter_documents([str(root)]) if isinstance(item, Document)]
    return sorted(documents, key=lambda document: document.uri)


def relative_source(uri: str, root: Path) -> str:
    path = uri.removeprefix("file://")
    return str(Path(path).relative_to(root)) if Path(path).is_absolute() else path


def our_chunks(
    documents: list, root: Path, chunk_tokens: int, overlap: int, contextual: bool
) -> Chunks:
    from genai_assets.rag.chunking import Chunker
    from genai_assets.rag.model_files import PACKAGED_MODEL, load_tokenizer, max_chunk_tokens

    chunker = Chunker(
        load_tokenizer(PACKAGED_MODEL),
        min(chunk_tokens, max_chunk_tokens(PACKAGED_MODEL)),
        overlap,
        contextual=contextual,
    )
    chunks = Chunks([], [], [], [])
    for document in documents:
        source = relative_source(document.uri, root)
        for chunk in chunker.chunk(document.text, document.title):
            chunks.texts.append(chunk.text)
            chunks.sources.append(source)
            chunks.contexts.append(chunk.context)
            chunks.embed_token_ids.append(chunk.embed_token_ids)
    return chunks


def langchain_chunks(root: Path) -> Chunks:
    from langchain_core.documents import Document
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    from bench.peers import _read_documents

    splitter = RecursiveCharacterTextSplitter(
        chunk_size=LANGCHAIN_TUTORIAL_CHUNK_SIZE, chunk_overlap=LANGCHAIN_TUTORIAL_CHUNK_OVERLAP
    )
    split = splitter.split_documents(
        [
            Document(page_content=text, metadata={"source": source})
            for source, text in _read_documents(root)
        ]
    )
    return Chunks(
        [chunk.page_content for chunk in split], [chunk.metadata["source"] for chunk in split]
    )


def _stats(texts: list[str]) -> tuple[float, int]:
    lengths = [len(text) for text in texts]
    return (statistics.median(lengths) if lengths else 0.0), sum(
        1 for n in lengths if n < SHORT_CHARS
    )


# --- Systems ------------------------------------------------------------------------


def _ask(
    result: SystemResult,
    questions: list[GoldenQuestion],
    embed: Callable[[str], list[float]],
    lookup: Callable[[list[float], str], list[str]],
) -> SystemResult:
    """Ask every question: embed it, look it up; time both, and the lookup alone."""
    first = questions[0].question
    lookup(embed(first), first)  # warm-up: first-call allocations are not latency
    for question in questions:
        started = time.perf_counter()
        vector = embed(question.question)
        embedded = time.perf_counter()
        sources = lookup(vector, question.question)
        done = time.perf_counter()
        result.latencies_ms.append((done - started) * 1000)
        result.search_ms.append((done - embedded) * 1000)
        result.rows.append(score_question(question, sources))
    return result


def run_edge_system(
    name: str,
    chunks: Chunks,
    embedder,
    settings: Sequence[QuerySettings],
    questions: list[GoldenQuestion],
    work_dir: Path,
) -> list[SystemResult]:
    """Index the chunks once, then ask every question with each of ``settings``.

    The questions go through ``genai_assets.rag.search.search`` on a freshly opened
    ``EdgeStore``, as a reader's would; more than one setting names each row by it.
    """
    from genai_assets.rag.edge_store import EdgeStore
    from genai_assets.rag.search import search

    started = time.perf_counter()
    root = work_dir / "stores" / name
    build_index(root, name, chunks, embedder.encode(chunks.read_by_model(), chunks.embed_token_ids))
    build_s = time.perf_counter() - started
    median_chars, short = _stats(chunks.texts)

    def embed(text: str) -> list[float]:
        return embedder.encode([text])[0].tolist()

    results = []
    store = EdgeStore(root)
    try:
        for setting in settings:
            label = name + (setting.label() if len(settings) > 1 else "")
            result = SystemResult(label, len(chunks.texts), median_chars, short, build_s)

            def lookup(vector: list[float], text: str, setting=setting) -> list[str]:
                hits = search(
                    store,
                    name,
                    [text],
                    lambda _texts: [vector],
                    TOP_K,
                    setting.mode,
                    setting.rrf_k,
                    setting.weights,
                )[0]
                return [hit.payload["source"] for hit in hits]

            results.append(_ask(result, questions, embed, lookup))
    finally:
        store.close()
    return results


def run_langchain(
    chunks: Chunks, dtype: str, questions: list[GoldenQuestion], work_dir: Path, args
) -> SystemResult:
    import sentence_transformers  # noqa: F401 - imported before the timer, as for ours
    from langchain_community.embeddings import HuggingFaceEmbeddings
    from langchain_qdrant import QdrantVectorStore
    from qdrant_client import QdrantClient
    from qdrant_client.models import Distance, VectorParams

    from genai_assets.rag.model_files import PACKAGED_MODEL, resolve_model_path

    started = time.perf_counter()
    model_kwargs: dict = {"device": "cpu"}
    if dtype != "fp32":
        model_kwargs["model_kwargs"] = {"torch_dtype": _torch_dtype(dtype)}
    embeddings = HuggingFaceEmbeddings(
        model_name=resolve_model_path(PACKAGED_MODEL),
        model_kwargs=model_kwargs,
        encode_kwargs={"batch_size": args.batch_size, "normalize_embeddings": True},
    )
    client = QdrantClient(path=str(work_dir / "langchain"))
    client.create_collection(
        "bench",
        vectors_config=VectorParams(
            size=embeddings.client.get_sentence_embedding_dimension(), distance=Distance.COSINE
        ),
    )
    store = QdrantVectorStore(client=client, collection_name="bench", embedding=embeddings)
    store.add_texts(chunks.texts, metadatas=[{"source": source} for source in chunks.sources])
    median_chars, short = _stats(chunks.texts)
    result = SystemResult(
        "langchain", len(chunks.texts), median_chars, short, time.perf_counter() - started
    )

    def lookup(vector: list[float], text: str) -> list[str]:
        hits = store.similarity_search_by_vector(vector, k=TOP_K)
        return [doc.metadata["source"] for doc in hits]

    try:
        return _ask(result, questions, embeddings.embed_query, lookup)
    finally:
        client.close()


def run_llamaindex(
    root: Path, dtype: str, questions: list[GoldenQuestion], work_dir: Path, args
) -> SystemResult:
    from llama_index.core import SimpleDirectoryReader, VectorStoreIndex
    from llama_index.core.ingestion import IngestionPipeline
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.core.schema import QueryBundle
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from llama_index.vector_stores.qdrant import QdrantVectorStore
    from qdrant_client import QdrantClient

    from genai_assets.rag.model_files import PACKAGED_MODEL, resolve_model_path

    started = time.perf_counter()
    model_kwargs = {} if dtype == "fp32" else {"model_kwargs": {"torch_dtype": _torch_dtype(dtype)}}
    embed_model = HuggingFaceEmbedding(
        model_name=resolve_model_path(PACKAGED_MODEL),
        embed_batch_size=args.batch_size,
        device="cpu",
        **model_kwargs,
    )
    client = QdrantClient(path=str(work_dir / "llamaindex"))
    vector_store = QdrantVectorStore(client=client, collection_name="bench")
    documents = SimpleDirectoryReader(
        input_dir=str(root), recursive=True, filename_as_id=True
    ).load_data()
    nodes = IngestionPipeline(
        transformations=[SentenceSplitter(), embed_model], vector_store=vector_store
    ).run(documents=documents)
    texts = [node.get_content() for node in nodes]
    median_chars, short = _stats(texts)
    result = SystemResult(
        "llamaindex", len(nodes), median_chars, short, time.perf_counter() - started
    )
    retriever = VectorStoreIndex.from_vector_store(
        vector_store, embed_model=embed_model
    ).as_retriever(similarity_top_k=TOP_K)

    def lookup(vector: list[float], text: str) -> list[str]:
        hits = retriever.retrieve(QueryBundle(query_str=text, embedding=vector))
        return [relative_source(hit.node.metadata["file_path"], root) for hit in hits]

    try:
        return _ask(result, questions, embed_model.get_query_embedding, lookup)
    finally:
        client.close()


# --- Harness ------------------------------------------------------------------------


def corpus_with_answers(corpus: Corpus, questions: list[GoldenQuestion]) -> Corpus:
    """The selected files plus every answer page (from the same root) not among them."""
    chosen = set(corpus.relative_files)
    missing = sorted(
        {page for q in questions for page in q.relevant_documents if page not in chosen}
    )
    absent = [page for page in missing if not (corpus.root / page).is_file()]
    if absent:
        raise FileNotFoundError(
            f"answer pages not under {corpus.root}: {', '.join(absent[:5])}"
            + (f" and {len(absent) - 5} more" if len(absent) > 5 else "")
        )
    if not missing:
        return corpus
    files = tuple(sorted([*corpus.files, *(corpus.root / page for page in missing)]))
    return Corpus(
        corpus.root, files, f"{corpus.description}, plus {len(missing)} answer pages outside it"
    )


def print_table(rows: list[dict]) -> None:
    columns = [
        ("system", "system", "{}"),
        ("chunks", "chunks", "{}"),
        ("median chars", "median_chars", "{:.0f}"),
        (f"< {SHORT_CHARS} chars", f"chunks_under_{SHORT_CHARS}_chars", "{}"),
        ("hit@5", "hit_at_5", "{:.3f}"),
        ("recall@5", "recall_at_5", "{:.3f}"),
        ("MRR@10", "mrr_at_10", "{:.3f}"),
        ("nDCG@10", "ndcg_at_10", "{:.3f}"),
        ("MRR tune", "mrr_at_10_tuning", "{:.3f}"),
        ("MRR held", "mrr_at_10_held_out", "{:.3f}"),
        ("hit@5 tune", "hit_at_5_tuning", "{:.3f}"),
        ("hit@5 held", "hit_at_5_held_out", "{:.3f}"),
        ("p50 ms", "p50_ms", "{:.1f}"),
        ("p95 ms", "p95_ms", "{:.1f}"),
        ("search p50", "search_p50_ms", "{:.1f}"),
        ("search p95", "search_p95_ms", "{:.1f}"),
        ("build s", "build_s", "{:.1f}"),
    ]
    cells = [[fmt.format(row[key]) for _, key, fmt in columns] for row in rows]
    widths = [
        max(len(title), *(len(line[i]) for line in cells))
        for i, (title, _, _) in enumerate(columns)
    ]
    print(" | ".join(title.ljust(w) for (title, _, _), w in zip(columns, widths, strict=True)))
    print("-+-".join("-" * w for w in widths))
    for line in cells:
        print(" | ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)))


def verdicts(rows: list[dict]) -> list[str]:
    """Issue 17's targets, for every ``ours*`` row."""
    by_name = {row["system"]: row for row in rows}
    peers = [by_name[name] for name in PEERS if name in by_name]
    reference = by_name.get(REFERENCE)
    lines = []
    for row in rows:
        if not row["system"].startswith("ours"):
            continue
        if peers:
            best = max(peers, key=lambda peer: peer["mrr_at_10"])
            margin = row["mrr_at_10"] - best["mrr_at_10"]
            met = "MET   " if margin >= MRR_MARGIN_OVER_PEERS else "MISSED"
            lines.append(
                f"{met} {row['system']}: MRR@10 {row['mrr_at_10']:.3f} vs best peer "
                f"{best['system']} {best['mrr_at_10']:.3f}: {margin:+.3f} "
                f"(target >= +{MRR_MARGIN_OVER_PEERS})"
            )
        if reference:
            met = (
                "MET   "
                if row["mrr_at_10"] >= reference["mrr_at_10"]
                and row["hit_at_5"] >= reference["hit_at_5"]
                else "MISSED"
            )
            lines.append(
                f"{met} {row['system']}: vs {REFERENCE} MRR@10 {row['mrr_at_10']:.3f} / "
                f"{reference['mrr_at_10']:.3f}, hit@5 {row['hit_at_5']:.3f} / "
                f"{reference['hit_at_5']:.3f} (target: at least equal on both)"
            )
        met = "MET   " if row["p50_ms"] <= QUERY_P50_MS else "MISSED"
        lines.append(
            f"{met} {row['system']}: query p50 {row['p50_ms']:.1f} ms, embedding the question "
            f"included (target <= {QUERY_P50_MS}); the search alone {row['search_p50_ms']:.1f} ms"
        )
    return lines


def run(args: argparse.Namespace) -> dict:
    from genai_assets.rag.embedder import Embedder
    from genai_assets.rag.model_files import PACKAGED_MODEL, max_chunk_tokens

    golden = load_golden_set(args.questions)
    for problem in golden.problems:
        print(f"warning: {args.questions} line {problem.line}: {problem.reason}", file=sys.stderr)
    questions = golden.questions[: args.max_questions] if args.max_questions else golden.questions
    corpus = corpus_with_answers(
        select_corpus(args.corpus, args.limit, args.subset, args.sample), questions
    )
    print(f"corpus: {len(corpus.files)} files ({corpus.description})")
    print(f"questions: {len(questions)} from {args.questions}")
    unknown = sorted(set(args.systems) - set(SYSTEMS))
    if unknown:
        raise SystemExit(
            f"unknown systems: {', '.join(unknown)} (choose from {', '.join(SYSTEMS)})"
        )

    results: list[SystemResult] = []
    with tempfile.TemporaryDirectory(prefix="retrieval-bench-") as tmp:
        work_dir = Path(tmp)
        root = copy_corpus(corpus, work_dir / "corpus").root
        embedder = Embedder(PACKAGED_MODEL, "cpu", args.dtype, args.batch_size)
        if embedder.dtype is None:  # "auto" on a CPU: decided by a probe on real text
            embedder.encode([question.question for question in questions[:64]])
        dtype = embedder.dtype
        print(f"dtype: {dtype} ({embedder.dtype_reason}), for every system")
        documents = our_documents(root)
        hybrid = [
            QuerySettings("hybrid", rrf_k, weights)
            for rrf_k in args.rrf_k
            for weights in args.weights
        ]
        settings = {"ours-dense": [QuerySettings("dense")], "ours-hybrid": hybrid}
        settings["ours-hybrid-contextual"] = hybrid
        for chunk_tokens in sorted(
            {min(n, max_chunk_tokens(PACKAGED_MODEL)) for n in args.chunk_tokens}
        ):
            for overlap in args.overlap_tokens:
                suffix = (
                    ""
                    if len(args.chunk_tokens) == 1 and len(args.overlap_tokens) == 1
                    else f"@{chunk_tokens}/{overlap}"
                )
                plain = contextual = None
                for name in OURS:
                    if name not in args.systems:
                        continue
                    if name.endswith("contextual"):
                        contextual = contextual or our_chunks(
                            documents, root, chunk_tokens, overlap, True
                        )
                        chunks = contextual
                    else:
                        plain = plain or our_chunks(documents, root, chunk_tokens, overlap, False)
                        chunks = plain
                    results.extend(
                        run_edge_system(
                            name + suffix, chunks, embedder, settings[name], questions, work_dir
                        )
                    )
                    print(f"  {name + suffix}: done", flush=True)
        if "langchain" in args.systems or REFERENCE in args.systems:
            lc_chunks = langchain_chunks(root)
            if "langchain" in args.systems:
                results.append(run_langchain(lc_chunks, dtype, questions, work_dir, args))
                print("  langchain: done", flush=True)
            if REFERENCE in args.systems:
                # Our hybrid query at the project's defaults, whatever grid ours ran.
                results.extend(
                    run_edge_system(
                        REFERENCE,
                        lc_chunks,
                        embedder,
                        [QuerySettings("hybrid")],
                        questions,
                        work_dir,
                    )
                )
                print(f"  {REFERENCE}: done", flush=True)
        if "llamaindex" in args.systems:
            results.append(run_llamaindex(root, dtype, questions, work_dir, args))
            print("  llamaindex: done", flush=True)

    tuning = tuning_ids(args.questions)
    rows = [result.summary(tuning) for result in results]
    print()
    print_table(rows)
    print()
    lines = verdicts(rows)
    for line in lines:
        print(line)
    return {
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "corpus": {"description": corpus.description, "files": corpus.relative_files},
        "questions": str(args.questions),
        "dtype": dtype,
        "settings": {
            "chunk_tokens": args.chunk_tokens,
            "overlap_tokens": args.overlap_tokens,
            "rrf_k": args.rrf_k,
            "weights": [list(w) if w else [1.0, 1.0] for w in args.weights],
            "prefetch": prefetch_limit(TOP_K),
            "batch_size": args.batch_size,
        },
        "summary": rows,
        "verdicts": lines,
        "per_question": {result.name: result.rows for result in results},
    }


def _weights(text: str) -> tuple[float, float] | None:
    dense, sep, sparse = text.partition(":")
    try:
        weights = (float(dense), float(sparse))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"weights {text!r} are not DENSE:SPARSE numbers (e.g. 1.5:1)"
        ) from None
    if not sep or min(weights) <= 0:
        raise argparse.ArgumentTypeError(f"weights {text!r} must be two positive numbers, D:S")
    return None if weights == (1.0, 1.0) else weights


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from genai_assets.defs.rag.assets import DocumentEmbeddingsConfig

    defaults = DocumentEmbeddingsConfig()
    default_tokens, default_overlap = defaults.chunk_tokens, defaults.overlap_tokens
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=Path, default=QUESTIONS)
    parser.add_argument("--max-questions", type=int, help="only the first N questions")
    parser.add_argument("--corpus", type=Path, help="a folder instead of python3-doc")
    parser.add_argument("--limit", type=int, help="only the first N files, sorted by path")
    parser.add_argument("--sample", type=int, help="N files evenly spaced over the subset")
    parser.add_argument("--subset", choices=("median300", "all"), default="median300")
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), metavar="SYSTEM")
    parser.add_argument(
        "--chunk-tokens",
        type=int,
        nargs="+",
        default=[default_tokens],
        help="our chunk sizes to compare (capped at the model's limit, 254)",
    )
    parser.add_argument("--overlap-tokens", type=int, nargs="+", default=[default_overlap])
    parser.add_argument("--dtype", choices=("auto", "fp32", "bf16"), default="auto")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--rrf-k",
        type=int,
        nargs="+",
        default=[DEFAULT_RRF_K],
        help="RRF's k for the hybrid query; several run every hybrid system at each",
    )
    parser.add_argument(
        "--weights",
        type=_weights,
        nargs="+",
        default=[DEFAULT_WEIGHTS],
        metavar="DENSE:SPARSE",
        help="RRF weights of the dense and the sparse ranking, e.g. 1.5:1; several as --rrf-k",
    )
    parser.add_argument("--output", type=Path, help="JSON file (default: bench/results/)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    report = run(args)
    output = args.output or RESULTS_DIR / (
        "retrieval-" + datetime.datetime.now().strftime("%Y%m%d-%H%M%S") + ".json"
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=1))
    print(f"\nwritten: {output}")


if __name__ == "__main__":
    main()
