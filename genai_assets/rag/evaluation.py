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

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RETRIEVAL_METRICS = ("hit_rate_at_k", "recall_at_k", "mrr", "ndcg_at_k")
_WHITESPACE = re.compile(r"\s+")


class GoldenSetError(ValueError):
    """The golden set is missing, empty, or has no usable question."""


@dataclass(frozen=True)
class GoldenQuestion:
    """One question of the golden set and what answers it."""

    id: str
    question: str
    reference_answer: str | None
    relevant_documents: tuple[str, ...]
    relevant_passages: tuple[str, ...]

    @property
    def targets(self) -> tuple[str, ...]:
        """What recall and nDCG count: the documents, else the passages."""
        return self.relevant_documents or self.relevant_passages


@dataclass(frozen=True)
class GoldenSetProblem:
    """A line of the golden set that could not be used, and why."""

    line: int
    reason: str


@dataclass(frozen=True)
class GoldenSet:
    """The usable questions of a golden set file, and the lines that were not usable."""

    path: str
    questions: list[GoldenQuestion]
    problems: list[GoldenSetProblem] = field(default_factory=list)


def normalise_whitespace(text: str) -> str:
    """Every run of whitespace as one space, without leading or trailing space."""
    return _WHITESPACE.sub(" ", text).strip()


def _string_list(record: dict[str, Any], key: str) -> tuple[str, ...]:
    value = record.get(key, [])
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueError(f"{key!r} must be a list of non-empty strings")
    return tuple(v.strip() for v in value)


def parse_golden_question(line: str) -> GoldenQuestion:
    """One JSONL line as a question.

    Raises:
        ValueError: the line is not a JSON object with an ``id``, a ``question`` and
            at least one relevant document or passage; the message says which.
    """
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise ValueError(f"not valid JSON ({error.msg} at column {error.colno})") from error
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    for key in ("id", "question"):
        if not isinstance(record.get(key), str) or not record[key].strip():
            raise ValueError(f"{key!r} is missing or not a non-empty string")
    answer = record.get("reference_answer")
    if answer is not None and not isinstance(answer, str):
        raise ValueError("'reference_answer' must be a string")
    documents = tuple(
        d.replace("\\", "/").lstrip("/") for d in _string_list(record, "relevant_documents")
    )
    passages = _string_list(record, "relevant_passages")
    if not documents and not passages:
        raise ValueError("names neither 'relevant_documents' nor 'relevant_passages'")
    return GoldenQuestion(
        id=record["id"].strip(),
        question=record["question"].strip(),
        reference_answer=answer.strip() if answer and answer.strip() else None,
        relevant_documents=documents,
        relevant_passages=passages,
    )


def load_golden_set(path: str | Path) -> GoldenSet:
    """Read a JSONL golden set; bad lines are reported by line number, the rest kept.

    Raises:
        GoldenSetError: the file does not exist, or holds no usable question.
    """
    path = Path(path)
    if not path.is_file():
        raise GoldenSetError(f"golden set {path} does not exist")
    questions: list[GoldenQuestion] = []
    problems: list[GoldenSetProblem] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            question = parse_golden_question(line)
        except ValueError as error:
            problems.append(GoldenSetProblem(number, str(error)))
            continue
        if question.id in seen:
            problems.append(
                GoldenSetProblem(
                    number, f"duplicate id {question.id!r} (first on line {seen[question.id]})"
                )
            )
            continue
        seen[question.id] = number
        questions.append(question)
    if not questions:
        detail = "; ".join(f"line {p.line}: {p.reason}" for p in problems[:5])
        raise GoldenSetError(
            f"golden set {path} has no usable question"
            + (f" ({len(problems)} bad lines: {detail})" if problems else " (it is empty)")
        )
    return GoldenSet(str(path), questions, problems)


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


def mean_scores(rows: Sequence[dict[str, Any]], metrics: Sequence[str]) -> dict[str, float | None]:
    """The mean of each metric over the rows that have it; None where no row has it."""
    means: dict[str, float | None] = {}
    for metric in metrics:
        values = [
            float(row[metric])
            for row in rows
            if isinstance(row.get(metric), int | float) and not math.isnan(float(row[metric]))
        ]
        means[metric] = sum(values) / len(values) if values else None
    return means


@dataclass(frozen=True)
class Coverage:
    """How many of the questions a metric applies to were scored."""

    scored: int
    applicable: int

    @property
    def share(self) -> float:
        """Scored questions over applicable ones (0.0 when it applies to none)."""
        return self.scored / self.applicable if self.applicable else 0.0

    def describe(self) -> str:
        """``"38 of 40 questions (95%)"``."""
        return f"{self.scored} of {self.applicable} questions ({self.share:.0%})"


def score_coverage(rows: Sequence[dict[str, Any]], metrics: Sequence[str]) -> dict[str, Coverage]:
    """Per metric, the questions that scored it out of those it applies to.

    A row scores a metric with a number. It applies to the row but was not scored
    when the row's ``unscored`` mapping names it (metric -> reason: an LLM judge
    that failed, an answer nowhere in the index); otherwise it does not apply (a
    metric that needs a reference answer, for a question without one).
    """
    coverage = {}
    for metric in metrics:
        scored = sum(
            1
            for row in rows
            if isinstance(row.get(metric), int | float) and not math.isnan(float(row[metric]))
        )
        unscored = sum(1 for row in rows if metric in (row.get("unscored") or {}))
        coverage[metric] = Coverage(scored, scored + unscored)
    return coverage


def short_source(source: str) -> str:
    """The last two path segments of a source URI, for tables."""
    return "/".join(source.replace("\\", "/").split("/")[-2:])


def worst_questions_table(
    rows: Sequence[dict[str, Any]], metrics: Sequence[str], limit: int = 10
) -> str:
    """A markdown table of the questions with the lowest scores (recall, then MRR, nDCG)."""
    if not rows:
        return "No question was evaluated."

    def key(row: dict[str, Any]) -> tuple:
        return tuple(row.get(m) if row.get(m) is not None else 2.0 for m in metrics)

    worst = sorted(rows, key=key)[:limit]
    header = ["id", "question", *metrics, "top sources"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for row in worst:
        scores = ["not run" if row.get(m) is None else f"{float(row[m]):.3f}" for m in metrics]
        question = row["question"].replace("|", "\\|")
        sources = ", ".join(
            f"`{short_source(s)}`" for s in row.get("retrieved_sources", "").split("\n")[:3] if s
        )
        lines.append("| " + " | ".join([row["id"], question, *scores, sources]) + " |")
    return "\n".join(lines)
