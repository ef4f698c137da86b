"""The retrieval quality gate: may a candidate index go live?

Two kinds of rule, both on mean scores over the golden set:

* a minimum per metric (``recall_at_k >= 0.8``);
* no regression against the index serving now: for each compared metric,
  ``candidate >= serving - max_regression``.

A metric with a minimum that was not computed (an LLM-judged one without an LLM)
fails the gate, naming it: a threshold that silently does not apply is no gate.
Likewise a gated metric scored for too few of the questions it applies to (LLM
judge failures, answers missing from the index): a mean over the survivors says
nothing about the rest, so below ``min_coverage`` the gate refuses.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from genai_assets.rag.evaluation.scores import Coverage

DEFAULT_MINIMUMS = {"hit_rate_at_k": 0.85, "recall_at_k": 0.75, "mrr": 0.6, "ndcg_at_k": 0.6}
DEFAULT_COMPARED = ("recall_at_k", "mrr", "ndcg_at_k")
DEFAULT_MAX_REGRESSION = 0.05
DEFAULT_MIN_COVERAGE = 0.9


@dataclass(frozen=True)
class RetrievalGateThresholds:
    """Minimums per metric, and how much worse than the serving index a candidate may be."""

    minimums: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_MINIMUMS))
    compared: Sequence[str] = DEFAULT_COMPARED
    max_regression: float = DEFAULT_MAX_REGRESSION
    min_coverage: float = DEFAULT_MIN_COVERAGE


@dataclass(frozen=True)
class RetrievalGateFailure:
    """One rule the candidate broke, and by how much."""

    metric: str
    rule: str  # "minimum", "regression", "coverage" or "not run"
    value: float | None
    required: float
    shortfall: float | None
    coverage: Coverage | None = None

    def describe(self) -> str:
        """One line a person reads in the check result."""
        if self.rule == "coverage" and self.coverage is not None:
            return (
                f"{self.metric} was scored for only {self.coverage.describe()}, below the "
                f"required coverage of {self.required:.0%}; no verdict on the rest"
            )
        if self.rule == "not run":
            return f"{self.metric} was not computed but has a minimum of {self.required:.3f}"
        if self.rule == "minimum":
            return (
                f"{self.metric} = {self.value:.3f} is below the minimum {self.required:.3f} "
                f"by {self.shortfall:.3f}"
            )
        return (
            f"{self.metric} = {self.value:.3f} is worse than the serving index allows "
            f"(at least {self.required:.3f}) by {self.shortfall:.3f}"
        )


@dataclass(frozen=True)
class RetrievalGateDecision:
    """Whether the candidate passed, the rules it broke, and every comparison made."""

    passed: bool
    failures: list[RetrievalGateFailure]
    comparisons: list[dict[str, Any]]

    def summary(self) -> str:
        """A short sentence: passed, or the failures."""
        if self.passed:
            return f"passed all {len(self.comparisons)} rules"
        return "failed: " + "; ".join(f.describe() for f in self.failures)

    def margins(self) -> dict[str, float]:
        """How far each rule's value is above what it requires (negative: short of it).

        Keyed ``<metric>`` for a minimum, ``<metric>_vs_serving`` for the comparison
        with the serving index and ``coverage_<metric>`` for coverage; a metric that
        was not computed has no margin.
        """
        keys = {"minimum": "{}", "regression": "{}_vs_serving", "coverage": "coverage_{}"}
        return {
            keys[c["kind"]].format(c["metric"]): c["value"] - c["required"]
            for c in self.comparisons
            if c["value"] is not None
        }


def decide(
    candidate: Mapping[str, float | None],
    serving: Mapping[str, float | None] | None,
    thresholds: RetrievalGateThresholds,
    coverage: Mapping[str, Coverage] | None = None,
) -> RetrievalGateDecision:
    """Apply the thresholds to the candidate's mean scores (and the serving index's, if any).

    ``coverage``, per metric, says how many questions the candidate's means are over:
    every gated metric (with a minimum, or compared) that applies to some question
    must be scored for at least ``thresholds.min_coverage`` of them.
    """
    failures: list[RetrievalGateFailure] = []
    comparisons: list[dict[str, Any]] = []
    gated = [
        *thresholds.minimums,
        *(m for m in thresholds.compared if m not in thresholds.minimums),
    ]
    for metric in gated:
        counted = (coverage or {}).get(metric)
        if counted is None or not counted.applicable:
            continue  # nothing to count; "not run" covers a metric that applies to nothing
        ok = counted.share >= thresholds.min_coverage
        comparisons.append(
            {
                "metric": metric,
                "kind": "coverage",
                "rule": f"coverage ({counted.scored}/{counted.applicable} scored)",
                "value": counted.share,
                "required": thresholds.min_coverage,
                "ok": ok,
            }
        )
        if not ok:
            shortfall = thresholds.min_coverage - counted.share
            failures.append(
                RetrievalGateFailure(
                    metric, "coverage", counted.share, thresholds.min_coverage, shortfall, counted
                )
            )
    for metric, minimum in thresholds.minimums.items():
        value = candidate.get(metric)
        if value is None:
            failure = RetrievalGateFailure(metric, "not run", None, minimum, None)
        elif value < minimum:
            failure = RetrievalGateFailure(metric, "minimum", value, minimum, minimum - value)
        else:
            failure = None
        comparisons.append(
            {
                "metric": metric,
                "kind": "minimum",
                "rule": "minimum",
                "value": value,
                "required": minimum,
                "ok": failure is None,
            }
        )
        if failure:
            failures.append(failure)
    if serving is not None:
        for metric in thresholds.compared:
            baseline = serving.get(metric)
            value = candidate.get(metric)
            if baseline is None or value is None:
                continue  # nothing to compare against; minimums cover a missing candidate value
            required = baseline - thresholds.max_regression
            ok = value >= required
            comparisons.append(
                {
                    "metric": metric,
                    "kind": "regression",
                    "rule": f"serving {baseline:.3f} - {thresholds.max_regression:.3f}",
                    "value": value,
                    "required": required,
                    "ok": ok,
                }
            )
            if not ok:
                shortfall = required - value
                failures.append(
                    RetrievalGateFailure(metric, "regression", value, required, shortfall)
                )
    return RetrievalGateDecision(not failures, failures, comparisons)
