"""Batch LLM inference: one partition per input file of prompts, every item out.

The logic lives in :mod:`genai_assets.batch_inference`; this module passes it
the resources and config, and reports what happened. Resumable state lives in
``<storage_root>/batch_inference/<partition>/`` (``progress.jsonl``, the
journal, and ``results.jsonl``, the ordered results), so re-materializing a
partition sends only the items without a successful result.
"""

import re
from pathlib import Path

import dagster as dg
from pydantic import Field

from genai_assets import settings
from genai_assets.batch_inference.engine import BatchRetrySettings
from genai_assets.batch_inference.pricing import Price, resolve_price
from genai_assets.batch_inference.runner import BatchSettings, run_batch_file
from genai_assets.defs.automation.policies import LLM_POOL, external_retry_policy
from genai_assets.resources.openai_api import OpenAICompatibleResource
from genai_assets.resources.prompt_source import PromptSourceResource

FAILURES_SHOWN = 20

batch_prompt_files = dg.DynamicPartitionsDefinition(name="batch_prompt_files")


class BatchInferenceConfig(dg.Config):
    """How to run one input file; every field has a working default."""

    model: str | None = Field(
        default=None, description="Model to call; None uses the `llm` resource's model."
    )
    concurrency: int = Field(default=8, description="Requests in flight at most (>= 1).")
    requests_per_minute: int | None = Field(
        default=None, description="Client-side request limit per window; None for no limit."
    )
    tokens_per_minute: int | None = Field(
        default=None,
        description="Client-side token limit per window (prompt estimate + max_tokens, "
        "corrected with reported usage); None for no limit.",
    )
    rate_window_s: float = Field(
        default=60.0, description="Window of the two limits in seconds: 60 means per minute."
    )
    max_attempts: int = Field(
        default=6,
        ge=1,
        description="Attempts per item for 429/5xx, timeouts, dropped connections and "
        "answers that are not a usable chat completion.",
    )
    backoff_base_s: float = Field(
        default=1.0, description="First retry wait (doubles each time, with jitter)."
    )
    backoff_max_s: float = Field(default=60.0, description="Longest exponential retry wait.")
    max_retry_after_s: float = Field(
        default=120.0, description="Longest wait honoured from a server's Retry-After."
    )
    request_timeout_s: float | None = Field(
        default=None, description="Per-request timeout; None uses the `llm` resource's."
    )
    max_tokens: int | None = Field(
        default=256, description="max_tokens for items that set none; None sends none."
    )
    temperature: float | None = Field(
        default=None, description="temperature for items that set none; None sends none."
    )
    retry_failed_items: bool = Field(
        default=True,
        description="Whether a rerun resends items whose recorded outcome is a failure.",
    )
    price_table_path: str | None = Field(
        default=None,
        description="Your own JSON price table (USD per 1M tokens per model), consulted "
        "first; models it lacks, or all when None, are priced from the maintained "
        "genai-prices table.",
    )
    input_usd_per_1m_tokens: float | None = Field(
        default=None, description="Input price overriding every table (set both prices)."
    )
    output_usd_per_1m_tokens: float | None = Field(
        default=None, description="Output price overriding every table (set both prices)."
    )


def work_dir_for(partition_key: str) -> Path:
    """Where a partition's resumable journal and results live."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", partition_key).lstrip(".") or "_"
    return settings.storage_root() / "batch_inference" / safe


def _price(config: BatchInferenceConfig, model: str) -> Price | None:
    try:
        return resolve_price(
            model,
            config.input_usd_per_1m_tokens,
            config.output_usd_per_1m_tokens,
            Path(config.price_table_path) if config.price_table_path else None,
        )
    except ValueError as error:  # a bad setting: fail before any request is sent
        raise dg.Failure(f"batch_inference_results prices: {error}", allow_retries=False) from error


FAILURES_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("line", "int", description="Line of the input file"),
        dg.TableColumn("id", "string"),
        dg.TableColumn("error_type", "string"),
        dg.TableColumn("attempts", "int"),
        dg.TableColumn("error", "string", description="The last reason, shortened"),
    ]
)


ERRORS_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("error_type", "string"),
        dg.TableColumn("attempts", "int", description="Failed attempts of this kind, this run"),
    ]
)


def _errors_table(errors: dict[str, int]) -> dg.TableMetadataValue:
    """Failed attempts of this run by kind (retried ones included)."""
    return dg.MetadataValue.table(
        records=[
            dg.TableRecord({"error_type": kind, "attempts": count})
            for kind, count in errors.items()
        ],
        schema=ERRORS_SCHEMA,
    )


def _limits_text(config: BatchInferenceConfig) -> str:
    """The run's request limits in words: settings are read, not plotted."""

    def per_window(limit: int | None, unit: str) -> str:
        return (
            f"no {unit} limit"
            if limit is None
            else f"{limit} {unit}s per {config.rate_window_s:g} s"
        )

    return (
        f"concurrency {config.concurrency}; {per_window(config.requests_per_minute, 'request')};"
        f" {per_window(config.tokens_per_minute, 'token')}; up to {config.max_attempts}"
        " attempts per item"
    )


def _failures_table(failed: list[dict]) -> dg.TableMetadataValue:
    """The first ``FAILURES_SHOWN`` failed rows; the rest are in the results file."""
    return dg.MetadataValue.table(
        records=[
            dg.TableRecord(
                {
                    "line": row["line"],
                    "id": row["id"] or "",
                    "error_type": row["error_type"],
                    "attempts": row["attempts"],
                    "error": str(row["error"])[:200],
                }
            )
            for row in failed[:FAILURES_SHOWN]
        ],
        schema=FAILURES_SCHEMA,
    )


@dg.asset(
    partitions_def=batch_prompt_files,
    group_name="batch_inference",
    kinds={"openai", "python"},
    tags={"stage": "inference"},
    pool=LLM_POOL,
    retry_policy=external_retry_policy(),
    # Bump when the request built from an input line, or the result row, changes shape.
    code_version="1",
    owners=["team:ml-platform"],
    check_specs=[
        dg.AssetCheckSpec(
            "no_failed_items",
            asset="batch_inference_results",
            description="Every item of the input file got an output (warns otherwise).",
        )
    ],
    description=(
        "Runs every request of one JSONL input file (the partition) through the `llm` "
        "OpenAI-compatible API: bounded concurrency, client-side requests/tokens per "
        "minute limits, retries with backoff for 429/5xx/timeouts and unusable answers "
        "(malformed or truncated JSON, a wrong shape). One row per input "
        "line, in input order: the output or the error, tokens, latency and attempts. "
        "Resumable: a rerun sends only the items without a successful result."
    ),
)
def batch_inference_results(
    context: dg.AssetExecutionContext,
    config: BatchInferenceConfig,
    llm: OpenAICompatibleResource,
    batch_prompts: PromptSourceResource,
):
    """One result row per input line of the partition's file."""
    model = config.model or llm.model
    if not model:
        raise dg.Failure(
            "batch_inference_results needs a model: set OPENAI_MODEL (and OPENAI_BASE_URL "
            "for vLLM or `transformers serve`) for the `llm` resource, or the `model` config",
            allow_retries=False,  # configuration: a retry cannot succeed
        )
    partition = context.partition_key
    work_dir = work_dir_for(partition)
    input_path = batch_prompts.fetch(partition, work_dir / "input")
    price = _price(config, model)
    report = run_batch_file(
        input_path,
        work_dir,
        client_factory=llm.async_client,
        settings=BatchSettings(
            model=model,
            concurrency=config.concurrency,
            requests_per_period=config.requests_per_minute,
            tokens_per_period=config.tokens_per_minute,
            rate_period_s=config.rate_window_s,
            retry=BatchRetrySettings(
                attempts=config.max_attempts,
                backoff_s=config.backoff_base_s,
                max_wait_s=config.backoff_max_s,
                max_retry_after_s=config.max_retry_after_s,
            ),
            defaults={"max_tokens": config.max_tokens, "temperature": config.temperature},
            request_timeout_s=config.request_timeout_s,
            retry_failed_items=config.retry_failed_items,
        ),
        price=price,
        log=context.log,
    )
    summary = report.summary
    metadata: dict[str, dg.MetadataValue] = {
        name: dg.MetadataValue.int(summary[name])
        for name in (
            "items_total",
            "items_ok",
            "items_failed",
            "items_malformed",
            "items_sent_this_run",
            "items_resumed",
            "retries_this_run",
            "input_tokens",
            "output_tokens",
        )
    }
    metadata["rate_limited_this_run"] = dg.MetadataValue.int(
        summary["errors_this_run"].get("rate_limited", 0)
    )
    for name in ("requests_per_s", "latency_p50_s", "latency_p95_s", "wall_s"):
        if summary[name] is not None:
            metadata[name] = dg.MetadataValue.float(float(summary[name]))
    if summary["estimated_cost_usd"] is not None:
        metadata["estimated_cost_usd"] = dg.MetadataValue.float(summary["estimated_cost_usd"])
        metadata["price_source"] = dg.MetadataValue.text(summary["price_source"])
    else:
        metadata["estimated_cost_usd"] = dg.MetadataValue.text(f"no price for model {model!r}")
    metadata["model"] = dg.MetadataValue.text(model)
    metadata["limits"] = dg.MetadataValue.text(_limits_text(config))
    metadata["errors_this_run"] = _errors_table(summary["errors_this_run"])
    metadata["results_path"] = dg.MetadataValue.path(str(report.results_path))
    metadata["progress_path"] = dg.MetadataValue.path(str(report.progress_path))
    failed = [row for row in report.rows if row["status"] != "ok"]
    metadata["failures"] = _failures_table(failed)
    if len(failed) > FAILURES_SHOWN:
        metadata["failures_not_shown"] = dg.MetadataValue.text(
            f"{len(failed) - FAILURES_SHOWN} more failed items in {report.results_path}"
        )
    if not summary["items_sent_this_run"]:
        # An expected outcome, said in words: no rate or latency is plotted for it.
        metadata["this_run"] = dg.MetadataValue.text(
            "nothing to send: every valid item already succeeded for the same request"
            if config.retry_failed_items
            else "nothing to send: every valid item already has an outcome for the same "
            "request (retry_failed_items is off)"
        )
    if report.corrupt_journal_lines:
        metadata["corrupt_journal_lines"] = dg.MetadataValue.int(report.corrupt_journal_lines)
    yield dg.Output(report.rows, metadata=metadata)
    yield dg.AssetCheckResult(
        check_name="no_failed_items",
        passed=summary["items_failed"] == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "items_failed": dg.MetadataValue.int(summary["items_failed"]),
            "items_malformed": dg.MetadataValue.int(summary["items_malformed"]),
        },
    )
