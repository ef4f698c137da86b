"""Evaluating a collection on a golden set: retrieve, score, and one row per question.

Retrieval goes through the collection and embedding model that built it (the
caller passes both, from ``document_embeddings``' value) and the same search
function readers use (:func:`genai_assets.rag.search.search`). The index is only
read inside :func:`retrieve_all`, so the embedded store can be closed before the
slower ragas and LLM work starts.
"""

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from genai_assets.rag.embedder import Embedder
from genai_assets.rag.evaluation.golden_set import GoldenQuestion
from genai_assets.rag.evaluation.ragas_metrics import (
    LLM_METRICS,
    NON_LLM_METRICS,
    LLMJudgement,
    RagasSample,
    llm_judgements,
    non_llm_scores,
)
from genai_assets.rag.evaluation.retrieval_metrics import (
    RETRIEVAL_METRICS,
    RetrievedChunk,
    comes_from,
    contains_passage,
    retrieval_scores,
)
from genai_assets.rag.precision import Precision, resolve_device
from genai_assets.rag.search import search
from genai_assets.rag.vector_store import DEFAULT_RRF_K, QueryMode, VectorStore

ALL_METRICS = (*RETRIEVAL_METRICS, *NON_LLM_METRICS, *LLM_METRICS)
SCROLL_PAGE = 1024


@dataclass
class Retrieval:
    """What one collection returned for every question, and its reference contexts."""

    collection: str
    chunks: list[list[RetrievedChunk]]
    reference_contexts: list[list[str]]
    points: int
    seconds: float


def reference_contexts(
    store: VectorStore, collection: str, questions: Sequence[GoldenQuestion]
) -> tuple[list[list[str]], int]:
    """Per question, the collection's chunks that hold its answer; and the collection's size.

    The chunks that contain a relevant passage, or for a question without
    passages the chunks of its relevant documents. Reads every point's text and
    source once (no vectors).
    """
    points = [
        (str(record.payload.get("source", "")), str(record.payload.get("text", "")))
        for record in store.scroll(collection, fields=["text", "source"], page=SCROLL_PAGE)
    ]
    contexts = []
    for question in questions:
        if question.relevant_passages:
            found = [
                text
                for _, text in points
                if any(contains_passage(text, p) for p in question.relevant_passages)
            ]
        else:
            found = [
                text
                for source, text in points
                if any(comes_from(source, d) for d in question.relevant_documents)
            ]
        contexts.append(found)
    return contexts, len(points)


def retrieve_all(
    store: VectorStore,
    collection: str,
    encode: Callable[[list[str]], Any],
    questions: Sequence[GoldenQuestion],
    k: int,
    mode: QueryMode = "dense",
    rrf_k: int = DEFAULT_RRF_K,
) -> Retrieval:
    """The top ``k`` chunks of ``collection`` (a name or an alias) for every question."""
    if not store.collection_exists(collection) and store.read_alias(collection) is None:
        raise ValueError(f"collection {collection!r} does not exist in {store.describe()}")
    started = time.perf_counter()
    hits = search(store, collection, [q.question for q in questions], encode, k, mode, rrf_k)
    chunks = [
        [
            RetrievedChunk(
                source=str(hit.payload.get("source", "")),
                text=str(hit.payload.get("text", "")),
                score=hit.score,
                chunk_index=hit.payload.get("chunk_index"),
            )
            for hit in found
        ]
        for found in hits
    ]
    contexts, points = reference_contexts(store, store.resolve(collection), questions)
    return Retrieval(collection, chunks, contexts, points, time.perf_counter() - started)


class QueryEncoders:
    """Query embedders at the precision that built each collection, one per precision.

    Query vectors come from the dtype that built the collection. A GPU that built it
    may not be here: then that dtype runs on the CPU, which embeds the same up to
    rounding. ``precision`` says, per role, what the queries really ran at.
    """

    def __init__(self, batch_size: int):
        self.batch_size = batch_size
        self.precision: dict[str, str] = {}
        self._embedders: dict[tuple[str, str, str], Embedder] = {}

    def encoder(self, role: str, model: str, device: str, dtype: str) -> Callable[[list[str]], Any]:
        """The encode function for a collection built by ``model`` at ``dtype`` on ``device``."""
        available = device in ("cpu", resolve_device("auto"))
        runs_on = device if available else "cpu"
        self.precision[role] = f"{dtype} on {runs_on}" + (
            "" if available else f" (the collection was built on {device})"
        )
        key = (model, runs_on, dtype)
        if key not in self._embedders:
            decided = Precision(runs_on, dtype, "the collection's")
            self._embedders[key] = Embedder(model, batch_size=self.batch_size, precision=decided)
        return self._embedders[key].encode


@dataclass(frozen=True)
class LLMSettings:
    """An OpenAI-compatible client and model for answer generation and judging."""

    client: Any
    model: str
    concurrency: int = 4


def score_retrieval(
    questions: Sequence[GoldenQuestion],
    retrieval: Retrieval,
    k: int,
    embedding_model_path: str,
    llm: LLMSettings | None = None,
    role: str = "candidate",
) -> list[dict[str, Any]]:
    """One flat row per question: retrieval metrics, ragas metrics, the answer used."""
    judgements = None
    samples = [
        RagasSample(
            question=q.question,
            retrieved_contexts=[c.text for c in chunks],
            reference_contexts=contexts,
            response=None,
            reference=q.reference_answer,
        )
        for q, chunks, contexts in zip(
            questions, retrieval.chunks, retrieval.reference_contexts, strict=True
        )
    ]
    if llm is not None:
        judgements = llm_judgements(
            [s for s in samples if s.retrieved_contexts],
            llm.client,
            llm.model,
            embedding_model_path,
            llm.concurrency,
        )
        judged = iter(judgements)
        judgements = [next(judged) if s.retrieved_contexts else None for s in samples]
    answers = []
    for i, sample in enumerate(samples):
        if judgements is not None and judgements[i] is not None:
            answers.append(judgements[i].answer)
        else:
            answers.append(sample.retrieved_contexts[0] if sample.retrieved_contexts else None)
    samples = [
        RagasSample(s.question, s.retrieved_contexts, s.reference_contexts, answer, s.reference)
        for s, answer in zip(samples, answers, strict=True)
    ]
    ragas_rows = non_llm_scores(samples, embedding_model_path)

    rows = []
    for i, (question, chunks) in enumerate(zip(questions, retrieval.chunks, strict=True)):
        judgement = judgements[i] if judgements is not None else None
        scores = {
            **ragas_rows[i],
            "faithfulness": judgement.faithfulness if judgement else None,
            "answer_relevancy": judgement.answer_relevancy if judgement else None,
            "context_precision": judgement.context_precision if judgement else None,
        }
        unscored = _unscored(question, scores, samples[i], judgements is not None, judgement)
        row: dict[str, Any] = {
            "role": role,
            "collection": retrieval.collection,
            "id": question.id,
            "question": question.question,
            "k": k,
            **retrieval_scores(question, chunks, k),
            **scores,
            "unscored": unscored,
            "llm_error": _judge_errors(judgement),
            "answer_source": "llm" if judgement and judgement.answer else "top_chunk",
            "answer": answers[i],
            "reference_answer": question.reference_answer,
            "reference_contexts_in_index": len(retrieval.reference_contexts[i]),
            "top_score": chunks[0].score if chunks else None,
            "retrieved_sources": "\n".join(c.source for c in chunks),
        }
        rows.append(row)
    return rows


def _judge_errors(judgement: LLMJudgement | None) -> str | None:
    """The question's LLM failures in one line, or None."""
    if judgement is None:
        return None
    return judgement.error or "; ".join(f"{m}: {e}" for m, e in judgement.failures.items()) or None


def _unscored(
    question: GoldenQuestion,
    scores: dict[str, float | None],
    sample: RagasSample,
    judged: bool,
    judgement: LLMJudgement | None,
) -> dict[str, str]:
    """The metrics that apply to the question but have no score, and why.

    The context metrics apply to every question (each names what answers it), the
    answer metrics and context precision to those with a reference answer, and the
    LLM-judged ones only when an LLM judges (``judged``).
    """
    applies = {
        "non_llm_context_recall": True,
        "non_llm_context_precision": True,
        "semantic_similarity": question.reference_answer is not None,
        "rouge_l": question.reference_answer is not None,
        "faithfulness": judged,
        "answer_relevancy": judged,
        "context_precision": judged and question.reference_answer is not None,
    }
    reasons = {}
    for metric, applicable in applies.items():
        if not applicable or scores[metric] is not None:
            continue
        if not sample.retrieved_contexts:
            reasons[metric] = "nothing was retrieved"
        elif metric in LLM_METRICS:
            failures = judgement.failures if judgement else {}
            reasons[metric] = (
                failures.get(metric)
                or (judgement.error if judgement else None)
                or "the judge gave no score"
            )
        elif metric.startswith("non_llm_context") and not sample.reference_contexts:
            reasons[metric] = "no chunk of the collection holds the answer"
        elif metric in ("semantic_similarity", "rouge_l") and not sample.response:
            reasons[metric] = "no answer"
        else:
            reasons[metric] = "ragas gave no score"
    return reasons


def collection_embedding(store: VectorStore, collection: str) -> dict[str, str] | None:
    """The embedding model, device and dtype recorded on the collection's points.

    Keys ``model``, ``device`` and ``dtype`` (the last two missing on collections
    written before they were recorded); None when the collection is empty.
    """
    fields = {"embedding_model": "model", "embedding_device": "device", "embedding_dtype": "dtype"}
    for record in store.scroll(collection, fields=list(fields), page=1):
        return {
            name: record.payload[key] for key, name in fields.items() if record.payload.get(key)
        }
    return None
