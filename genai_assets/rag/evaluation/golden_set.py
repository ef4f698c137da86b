"""The golden set: questions, what answers each, and the lines of the file that are not usable."""

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


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
