"""Materialization metadata as Prometheus metrics, pushed to a Pushgateway (no dagster import).

One generic mapping for every asset: a metadata entry whose key is in
:data:`METADATA_METRICS` (or is a quality score, or a model's eval metric)
becomes a gauge. The metrics of one materialization form one Pushgateway
group, keyed by code location, asset and partition: each push replaces that
group, so the gateway always holds the latest materialization of each asset
(and partition), which is what a person alerts on. Names follow Prometheus
conventions: a ``genai_assets_`` prefix, base units in the name (``_seconds``,
``_ratio``, ``_dollars``), ``_total`` only on counters (none here: every value is
a gauge of the latest materialization).
"""

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

PREFIX = "genai_assets_"
JOB = "genai_assets"


@dataclass(frozen=True)
class MetricSpec:
    """A gauge: its name, help text and labels that tell entries of one name apart."""

    name: str
    help: str
    labels: tuple[tuple[str, str], ...] = ()


def _spec(name: str, help_text: str, **labels: str) -> MetricSpec:
    return MetricSpec(PREFIX + name, help_text, tuple(sorted(labels.items())))


# Metadata key -> gauge. The same key means the same thing in every asset that reports it.
METADATA_METRICS: dict[str, MetricSpec] = {
    # RAG ingestion
    "documents": _spec("documents", "Documents read by the latest materialization."),
    # raw_documents reports bad inputs as "skipped", document_embeddings as "documents_skipped":
    # both are documents that failed (reported and skipped; a rerun after the fix picks them up).
    "skipped": _spec("documents_failed", "Documents that failed and were skipped."),
    "documents_skipped": _spec("documents_failed", "Documents that failed and were skipped."),
    "documents_new": _spec("documents_changed", "Documents by change.", change="new"),
    "documents_changed": _spec("documents_changed", "Documents by change.", change="changed"),
    "documents_deleted": _spec("documents_changed", "Documents by change.", change="deleted"),
    "documents_unchanged": _spec("documents_changed", "Documents by change.", change="unchanged"),
    "chunks_embedded": _spec("chunks", "Chunks by outcome.", outcome="embedded"),
    "chunks_reused": _spec("chunks", "Chunks by outcome.", outcome="skipped_unchanged"),
    "chunks_deduplicated": _spec("chunks", "Chunks by outcome.", outcome="skipped_duplicate"),
    "chunks_deleted": _spec("chunks", "Chunks by outcome.", outcome="deleted"),
    "chunks_per_second": _spec("embedding_chunks_per_second", "Embedding throughput."),
    "token_coverage": _spec(
        "token_coverage_ratio", "Share of document tokens inside the embedded chunks (0-1)."
    ),
    "points": _spec("index_points", "Points in the index collection."),
    # Batch inference
    "items_total": _spec("batch_items", "Batch items by status.", status="total"),
    "items_ok": _spec("batch_items", "Batch items by status.", status="ok"),
    "items_failed": _spec("batch_items", "Batch items by status.", status="failed"),
    "items_malformed": _spec("batch_items", "Batch items by status.", status="malformed"),
    "retries_this_run": _spec("batch_retries", "Request retries in the latest run."),
    "rate_limited_this_run": _spec(
        "batch_rate_limited", "Requests answered 429 in the latest run."
    ),
    "input_tokens": _spec("llm_tokens", "LLM tokens of the partition.", direction="input"),
    "output_tokens": _spec("llm_tokens", "LLM tokens of the partition.", direction="output"),
    "estimated_cost_usd": _spec("llm_cost_dollars", "Estimated LLM cost of the partition (USD)."),
    "latency_p50_s": _spec("llm_request_latency_seconds", "Request latency.", quantile="0.5"),
    "latency_p95_s": _spec("llm_request_latency_seconds", "Request latency.", quantile="0.95"),
    "requests_per_s": _spec("llm_requests_per_second", "Request throughput of the latest run."),
    # Fine-tuning
    "n_train": _spec("training_records", "Training records by split.", split="train"),
    "n_eval": _spec("training_records", "Training records by split.", split="eval"),
    "n_quarantined": _spec("training_records", "Training records by split.", split="quarantined"),
    "first_loss": _spec("training_loss", "Training loss.", point="first"),
    "last_loss": _spec("training_loss", "Training loss.", point="last"),
    "gate_passed": _spec("promotion_gate_passed", "1 when the candidate passed the gate."),
}
# eval_report: "<model>_<metric>" for the candidate, the base model and the champion.
_EVAL = re.compile(r"^(candidate|base|champion)_(perplexity|rouge_l|bleu)$")
_EVAL_HELP = "Held-out evaluation of a model (candidate, base, champion)."
SCORE_METRIC = PREFIX + "quality_score"
STEP_DURATION = PREFIX + "step_duration_seconds"
LAST_MATERIALIZATION = PREFIX + "last_materialization_timestamp_seconds"


@dataclass(frozen=True)
class Sample:
    """One gauge value with its own labels (the group's labels come on top)."""

    name: str
    help: str
    value: float
    labels: dict[str, str] = field(default_factory=dict)


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None  # text, tables, paths, and non-finite numbers are not metrics


def samples_from_metadata(
    metadata: Mapping[str, object],
    score_names: Iterable[str] = (),
    step_duration_s: float | None = None,
    timestamp_s: float | None = None,
) -> list[Sample]:
    """The gauges of one materialization's metadata (plain values, not MetadataValue).

    ``score_names`` are quality scores (``mrr``, ``faithfulness``...): reported
    as ``genai_assets_quality_score{metric=..., index="candidate"}``, and with a
    ``serving_`` prefix as ``index="serving"``.
    """
    scores = set(score_names)
    samples: list[Sample] = []
    for key, raw in sorted(metadata.items()):
        value = _number(raw)
        if value is None:
            continue
        if key in METADATA_METRICS:
            spec = METADATA_METRICS[key]
            samples.append(Sample(spec.name, spec.help, value, dict(spec.labels)))
        elif (match := _EVAL.match(key)) is not None:
            model, metric = match.groups()
            samples.append(
                Sample(f"{PREFIX}model_eval_{metric}", _EVAL_HELP, value, {"model": model})
            )
        elif key in scores or (key.startswith("serving_") and key[8:] in scores):
            index, metric = ("serving", key[8:]) if key not in scores else ("candidate", key)
            samples.append(
                Sample(
                    SCORE_METRIC,
                    "Mean quality score on the golden set (0-1).",
                    value,
                    {"metric": metric, "index": index},
                )
            )
    if step_duration_s is not None:
        samples.append(
            Sample(STEP_DURATION, "Duration of the step that materialized.", step_duration_s)
        )
    if timestamp_s is not None:
        samples.append(
            Sample(LAST_MATERIALIZATION, "When the asset was last materialized.", timestamp_s)
        )
    return samples


def grouping_key(code_location: str, asset: str, partition: str | None) -> dict[str, str]:
    """The Pushgateway group of one asset (and partition) of one code location."""
    key = {"code_location": code_location, "asset": asset}
    if partition:
        key["partition"] = partition
    return key


def push(
    gateway_url: str,
    group: Mapping[str, str],
    samples: Iterable[Sample],
    timeout_s: float = 10.0,
    username: str | None = None,
    password: str | None = None,
) -> None:
    """Replace the group's metrics on the Pushgateway (HTTP PUT); raise when it refuses.

    Raises:
        ValueError: when two samples of one name carry different label names.
        OSError: (urllib's URLError or HTTPError) when the gateway cannot be reached.
    """
    from prometheus_client import CollectorRegistry, Gauge, push_to_gateway
    from prometheus_client.exposition import basic_auth_handler, default_handler

    registry = CollectorRegistry()
    gauges: dict[str, tuple[Gauge, tuple[str, ...]]] = {}
    for sample in samples:
        names = tuple(sorted(sample.labels))
        if sample.name not in gauges:
            gauge = Gauge(sample.name, sample.help, labelnames=names, registry=registry)
            gauges[sample.name] = (gauge, names)
        gauge, known = gauges[sample.name]
        if known != names:
            raise ValueError(f"metric {sample.name}: labels {names} differ from {known}")
        (gauge.labels(**sample.labels) if names else gauge).set(sample.value)

    def handler(url, method, timeout, headers, data):
        if username:
            return basic_auth_handler(url, method, timeout, headers, data, username, password)
        return default_handler(url, method, timeout, headers, data)

    push_to_gateway(
        gateway_url,
        job=JOB,
        registry=registry,
        grouping_key=dict(group),
        timeout=timeout_s,
        handler=handler,
    )
