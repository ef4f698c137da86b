"""Aggregates over per-question score rows: means, how many questions each metric covers."""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


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


def worst_questions(
    rows: Sequence[dict[str, Any]], metrics: Sequence[str], limit: int = 10
) -> list[dict[str, Any]]:
    """The questions with the lowest scores (by ``metrics`` in order; unscored sort last).

    Each has its ``id``, ``question``, every metric (None: not scored) and its
    ``top_sources`` (the first three, shortened).
    """

    def key(row: dict[str, Any]) -> tuple:
        return tuple(row.get(m) if row.get(m) is not None else 2.0 for m in metrics)

    return [
        {
            "id": row["id"],
            "question": row["question"],
            **{m: None if row.get(m) is None else float(row[m]) for m in metrics},
            "top_sources": ", ".join(
                short_source(s) for s in row.get("retrieved_sources", "").split("\n")[:3] if s
            ),
        }
        for row in sorted(rows, key=key)[:limit]
    ]
