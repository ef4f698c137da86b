"""Retrieval quality against a golden set: loading it, judging relevance, and the metrics.

Relevance, precisely. A question of the golden set names its relevant documents
(paths relative to the corpus folder, e.g. ``guides/restore.md``) and/or
relevant passages (verbatim excerpts of those documents). For a retrieved chunk:

* it *comes from* a relevant document ``d`` when its ``source`` equals ``d`` or
  ends with ``"/" + d`` (backslashes read as slashes);
* it *contains* a relevant passage ``p`` when the whitespace-normalised passage
  (every run of whitespace replaced by one space, ends stripped) is a substring of
  the whitespace-normalised chunk text; case and punctuation must match;
* it is *relevant* when it comes from a relevant document or contains a relevant
  passage.

The *targets* of a question are its relevant documents, or its passages when it
names no document. A chunk *finds* a target document it comes from, or a target
passage it contains. With the top ``k`` chunks ranked 1..k:

* ``hit_rate@k`` = 1 if any of them is relevant, else 0;
* ``mrr`` (reciprocal rank, cut at k) = 1 / rank of the first relevant chunk, 0 if none;
* ``recall@k`` = targets found by some chunk / number of targets;
* ``ndcg@k`` = DCG / IDCG with binary gains: rank ``i`` gains 1 when its chunk finds
  a target that no higher-ranked chunk found (a second chunk of the same document
  gains nothing), DCG = sum of gain_i / log2(i + 1), and IDCG is the DCG of
  min(k, number of targets) gains at the top ranks.

Every aggregate is the mean over the questions evaluated.
"""

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from genai_assets.rag.evaluation.golden_set import GoldenQuestion

RETRIEVAL_METRICS = ("hit_rate_at_k", "recall_at_k", "mrr", "ndcg_at_k")
_WHITESPACE = re.compile(r"\s+")


def normalise_whitespace(text: str) -> str:
    """Every run of whitespace as one space, without leading or trailing space."""
    return _WHITESPACE.sub(" ", text).strip()


@dataclass(frozen=True)
class RetrievedChunk:
    """A chunk returned by the index for a question, in rank order."""

    source: str
    text: str
    score: float
    chunk_index: int | None = None


def comes_from(source: str, document: str) -> bool:
    """Whether a chunk's ``source`` URI is the relevant ``document`` (a relative path)."""
    source = source.replace("\\", "/")
    return source == document or source.endswith("/" + document)


def contains_passage(text: str, passage: str) -> bool:
    """Whether ``passage`` occurs in ``text``, whitespace-normalised."""
    return normalise_whitespace(passage) in normalise_whitespace(text)


def found_targets(question: GoldenQuestion, chunk: RetrievedChunk) -> frozenset[str]:
    """The question's targets that ``chunk`` finds."""
    if question.relevant_documents:
        return frozenset(d for d in question.relevant_documents if comes_from(chunk.source, d))
    return frozenset(p for p in question.relevant_passages if contains_passage(chunk.text, p))


def is_relevant(question: GoldenQuestion, chunk: RetrievedChunk) -> bool:
    """Whether the chunk comes from a relevant document or contains a relevant passage."""
    return any(comes_from(chunk.source, d) for d in question.relevant_documents) or any(
        contains_passage(chunk.text, p) for p in question.relevant_passages
    )


def hit_rate_at_k(relevant: Sequence[bool], k: int) -> float:
    """1.0 when any of the first ``k`` results is relevant, else 0.0."""
    return 1.0 if any(relevant[:k]) else 0.0


def reciprocal_rank(relevant: Sequence[bool], k: int) -> float:
    """1 / rank of the first relevant result among the first ``k``; 0.0 if none."""
    for rank, flag in enumerate(relevant[:k], start=1):
        if flag:
            return 1.0 / rank
    return 0.0


def recall_at_k(found: Sequence[frozenset[str]], n_targets: int, k: int) -> float:
    """Share of the ``n_targets`` targets found by the first ``k`` results."""
    if n_targets <= 0:
        raise ValueError("recall needs at least one target")
    return len(frozenset().union(*found[:k])) / n_targets


def ndcg_at_k(found: Sequence[frozenset[str]], n_targets: int, k: int) -> float:
    """Normalised DCG with binary gains for results that find a target not found higher up."""
    if n_targets <= 0:
        raise ValueError("nDCG needs at least one target")
    seen: set[str] = set()
    dcg = 0.0
    for rank, targets in enumerate(found[:k], start=1):
        if targets - seen:
            dcg += 1.0 / math.log2(rank + 1)
            seen |= targets
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(k, n_targets) + 1))
    return dcg / ideal


def retrieval_scores(
    question: GoldenQuestion, chunks: Sequence[RetrievedChunk], k: int
) -> dict[str, Any]:
    """The retrieval metrics of one question's ranked chunks, and where the relevant ones are."""
    chunks = list(chunks[:k])
    relevant = [is_relevant(question, chunk) for chunk in chunks]
    found = [found_targets(question, chunk) for chunk in chunks]
    n_targets = len(question.targets)
    first = next((rank for rank, flag in enumerate(relevant, start=1) if flag), None)
    return {
        "hit_rate_at_k": hit_rate_at_k(relevant, k),
        "recall_at_k": recall_at_k(found, n_targets, k),
        "mrr": reciprocal_rank(relevant, k),
        "ndcg_at_k": ndcg_at_k(found, n_targets, k),
        "first_relevant_rank": first,
        "relevant_ranks": ",".join(str(r) for r, flag in enumerate(relevant, start=1) if flag),
    }
