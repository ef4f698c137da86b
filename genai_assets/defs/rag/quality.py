"""RAG quality: rag_quality_metrics, the blocking quality gate, and the blue/green serving alias.

document_embeddings -> rag_quality_metrics -[rag_quality_gate, blocking]-> rag_serving_index

The gate is a blocking asset check, so a candidate that fails it stops the run
before rag_serving_index: the alias, and so the index readers use, stays as it
was. rag_serving_index also refuses to promote on its own when the latest gate
evaluation did not pass for the latest metrics, so materializing it alone cannot
skip the gate. ``rag_rollback_job`` (or ``python -m genai_assets.rag.rollback``)
points the alias back at the previous collection.
"""

from pathlib import Path
from typing import Literal

import dagster as dg
from pydantic import Field

from genai_assets import settings
from genai_assets.defs.automation.policies import QDRANT_POOL, external_retry_policy
from genai_assets.rag.blue_green import AS_READ, AsRead, BlueGreenError, BlueGreenIndex, SwapResult
from genai_assets.rag.embedder import Embedder, Precision, resolve_device, resolve_model_path
from genai_assets.rag.evaluation import (
    RETRIEVAL_METRICS,
    Coverage,
    GoldenSetError,
    load_golden_set,
    mean_scores,
    retrieval_scores,
    score_coverage,
    worst_questions_table,
)
from genai_assets.rag.gate import (
    DEFAULT_COMPARED,
    DEFAULT_MAX_REGRESSION,
    DEFAULT_MIN_COVERAGE,
    DEFAULT_MINIMUMS,
    GateThresholds,
    decide,
)
from genai_assets.rag.index_evaluation import (
    ALL_METRICS,
    LLMSettings,
    collection_embedding,
    retrieve_all,
    score_retrieval,
)
from genai_assets.rag.ragas_metrics import LLM_METRICS
from genai_assets.rag.vector_store import DEFAULT_QUERY_MODE
from genai_assets.resources.embeddings import SentenceTransformerResource
from genai_assets.resources.mlflow_tracking import MlflowTrackingResource
from genai_assets.resources.openai_api import OpenAICompatibleResource
from genai_assets.resources.qdrant import QdrantResource

GROUP = "rag"
GATE_CHECK = dg.AssetCheckKey(dg.AssetKey("rag_quality_metrics"), "rag_quality_gate")
DEFAULT_GOLDEN_SET = settings.PACKAGE_DATA / "golden_set.jsonl"
NO_ALIAS = "none (alias not created yet)"


class RagQualityConfig(dg.Config):
    """How rag_quality_metrics evaluates the index."""

    golden_set_path: str = Field(
        default="",
        description="JSONL golden set: one question per line with its relevant documents "
        "and/or passages and an optional reference answer. Empty: the sample golden set.",
    )
    top_k: int = Field(default=5, ge=1, le=100, description="Chunks retrieved per question (k).")
    query_mode: Literal["dense", "sparse", "hybrid"] = Field(
        default=DEFAULT_QUERY_MODE,
        description="How chunks are retrieved, as readers retrieve them (genai_assets.rag.search): "
        "by the embedding, by BM25, or both fused by reciprocal rank.",
    )
    rrf_k: int = Field(default=60, ge=1, description="The k of reciprocal rank fusion (hybrid).")
    compare_with_serving: bool = Field(
        default=True,
        description="Also evaluate the collection behind the alias, when it differs from the "
        "candidate, so the gate can compare the two.",
    )
    llm_concurrency: int = Field(
        default=4, ge=1, description="Questions judged by the LLM at the same time."
    )
    worst_questions: int = Field(
        default=10, ge=1, description="Rows in the metadata table of the worst questions."
    )


def _coverage_table(coverage: dict[str, Coverage]) -> str:
    lines = ["| metric | scored | applies to | coverage |", "| --- | --- | --- | --- |"]
    for metric, counted in coverage.items():
        if counted.applicable:
            lines.append(
                f"| {metric} | {counted.scored} | {counted.applicable} | {counted.share:.0%} |"
            )
    return "\n".join(lines)


def _unscored_table(rows: list[dict], limit: int = 20) -> str:
    """Questions with metrics that apply but were not scored, and why."""
    entries = [
        (row["id"], metric, reason)
        for row in rows
        for metric, reason in (row.get("unscored") or {}).items()
    ]
    if not entries:
        return "Every metric was scored for every question it applies to."
    lines = ["| id | metric | why not scored |", "| --- | --- | --- |"]
    for qid, metric, reason in entries[:limit]:
        lines.append(f"| {qid} | {metric} | {reason.replace('|', '/')[:200]} |")
    if len(entries) > limit:
        lines.append(f"\n... and {len(entries) - limit} more")
    return "\n".join(lines)


def _aggregates_metadata(prefix: str, means: dict[str, float | None]) -> dict[str, object]:
    return {
        f"{prefix}{metric}": dg.MetadataValue.float(round(value, 6))
        for metric, value in means.items()
        if value is not None
    }


def _mode_gain_table(
    mode: str, means: dict[str, float | None], dense: dict[str, float | None]
) -> str:
    """Markdown: each retrieval metric in the query mode, dense alone, and the difference."""
    lines = [f"| metric | {mode} | dense alone | gain |", "|---|---|---|---|"]
    for metric in RETRIEVAL_METRICS:
        ours, base = means.get(metric), dense.get(metric)
        if ours is not None and base is not None:
            lines.append(f"| {metric} | {ours:.3f} | {base:.3f} | {ours - base:+.3f} |")
    return "\n".join(lines)


@dg.asset(
    group_name=GROUP,
    kinds={"qdrant", "ragas"},
    owners=["team:ml-platform"],
    tags={"stage": "evaluation"},
    # Bump when the metrics or how they are computed change (scores stop being comparable).
    code_version="1",
    retry_policy=external_retry_policy(),
    pool=QDRANT_POOL,
    description="How well the index that document_embeddings just wrote answers the golden "
    "set: per question, the top-k chunks' hit rate, recall, reciprocal rank and nDCG, the "
    "ragas metrics that need no LLM, and (with an LLM configured) an answer generated from "
    "the chunks judged for faithfulness, answer relevancy and context precision. The "
    "collection behind the serving alias is evaluated too when it differs, for the gate.",
)
def rag_quality_metrics(
    context: dg.AssetExecutionContext,
    config: RagQualityConfig,
    document_embeddings: dict,
    embedder: SentenceTransformerResource,
    qdrant: QdrantResource,
    llm: OpenAICompatibleResource,
    mlflow: MlflowTrackingResource,
) -> dg.MaterializeResult:
    """Evaluate the candidate collection (and the serving one) on the golden set."""
    candidate = document_embeddings["collection"]
    alias = document_embeddings["alias"]
    model = document_embeddings["model"]
    if document_embeddings["location"] != qdrant.describe():
        raise dg.Failure(
            description=f"document_embeddings wrote {candidate} to "
            f"{document_embeddings['location']} but the qdrant resource now points at "
            f"{qdrant.describe()}; rematerialize document_embeddings with this qdrant resource",
            allow_retries=False,
        )
    path = Path(config.golden_set_path) if config.golden_set_path else DEFAULT_GOLDEN_SET
    try:
        golden = load_golden_set(path)
    except GoldenSetError as error:
        raise dg.Failure(description=str(error), allow_retries=False) from error
    for problem in golden.problems:
        context.log.warning(f"golden set {path} line {problem.line} skipped: {problem.reason}")
    questions = golden.questions

    if "dtype" not in document_embeddings:
        raise dg.Failure(
            description=f"document_embeddings' value for {candidate} does not say which dtype "
            "and device built it (it was materialized by an older version); rematerialize "
            "document_embeddings",
            allow_retries=False,
        )
    embedders: dict[tuple[str, str, str], Embedder] = {}
    query_precision: dict[str, str] = {}

    def encoder(role: str, name: str, device: str, dtype: str):
        # Query vectors at the dtype that built the collection. A GPU that built it may
        # not be here: then its dtype on the CPU, which embeds the same up to rounding.
        available = device in ("cpu", resolve_device("auto"))
        runs_on = device if available else "cpu"
        query_precision[role] = f"{dtype} on {runs_on}" + (
            "" if available else f" (the collection was built on {device})"
        )
        if (name, runs_on, dtype) not in embedders:
            decided = Precision(runs_on, dtype, "the collection's")
            embedders[name, runs_on, dtype] = Embedder(
                name, batch_size=embedder.batch_size, precision=decided
            )
        return embedders[name, runs_on, dtype].encode

    k = config.top_k
    built = (document_embeddings["device"], document_embeddings["dtype"])
    with qdrant.open() as store:
        live = BlueGreenIndex(store, alias).live()
        retrievals = [
            (
                "candidate",
                model,
                retrieve_all(
                    store,
                    candidate,
                    encoder("candidate", model, *built),
                    questions,
                    k,
                    config.query_mode,
                    config.rrf_k,
                ),
            )
        ]
        if config.compare_with_serving and live is not None and live != candidate:
            recorded = collection_embedding(store, live) or {}
            serving_model = recorded.get("model", model)
            # Collections written before device and dtype were recorded: the candidate's.
            serving_built = (recorded.get("device", built[0]), recorded.get("dtype", built[1]))
            serving_encode = encoder("serving", serving_model, *serving_built)
            serving = retrieve_all(
                store, live, serving_encode, questions, k, config.query_mode, config.rrf_k
            )
            retrievals.append(("serving", serving_model, serving))
        # Once per evaluation, dense search alone on the candidate: what the query mode buys.
        dense_alone = (
            retrieve_all(
                store, candidate, encoder("candidate", model, *built), questions, k, "dense"
            )
            if config.query_mode != "dense"
            else None
        )

    llm_settings = (
        LLMSettings(llm.async_client(max_retries=2), llm.model, config.llm_concurrency)
        if llm.is_configured
        else None
    )
    rows: list[dict] = []
    for role, role_model, retrieval in retrievals:
        context.log.info(f"scoring {role} {retrieval.collection} ({retrieval.points} points)")
        rows.extend(
            score_retrieval(
                questions,
                retrieval,
                k,
                resolve_model_path(role_model),
                llm_settings if role == "candidate" else None,
                role,
            )
        )
    candidate_rows = [r for r in rows if r["role"] == "candidate"]
    serving_rows = [r for r in rows if r["role"] == "serving"]
    means = mean_scores(candidate_rows, ALL_METRICS)
    coverage = score_coverage(candidate_rows, ALL_METRICS)
    llm_errors = [r for r in candidate_rows if r["llm_error"]]
    metadata: dict[str, object] = {
        "collection": candidate,
        "model": model,
        "alias": alias,
        "serving_collection": live or NO_ALIAS,
        "k": dg.MetadataValue.int(k),
        "query_mode": config.query_mode,
        "query_precision": query_precision["candidate"],
        "questions": dg.MetadataValue.int(len(questions)),
        "golden_set": str(path),
        "golden_set_lines_skipped": dg.MetadataValue.int(len(golden.problems)),
        "unanswerable_in_index": dg.MetadataValue.int(
            sum(1 for r in candidate_rows if r["reference_contexts_in_index"] == 0)
        ),
        **_aggregates_metadata("", means),
        **_aggregates_metadata("serving_", mean_scores(serving_rows, ALL_METRICS)),
        "metric_coverage": dg.MetadataValue.md(_coverage_table(coverage)),
        "unscored_questions": dg.MetadataValue.md(_unscored_table(candidate_rows)),
        **{
            f"coverage_{metric}": dg.MetadataValue.float(round(counted.share, 6))
            for metric, counted in coverage.items()
            if counted.applicable and metric not in RETRIEVAL_METRICS
        },
        "worst_questions": dg.MetadataValue.md(
            worst_questions_table(
                candidate_rows,
                [*RETRIEVAL_METRICS[1:], "non_llm_context_recall"],
                config.worst_questions,
            )
        ),
    }
    if dense_alone is not None:
        dense_means = mean_scores(
            [
                retrieval_scores(question, chunks, k)
                for question, chunks in zip(questions, dense_alone.chunks, strict=True)
            ],
            RETRIEVAL_METRICS,
        )
        metadata.update(_aggregates_metadata("dense_only_", dense_means))
        metadata["query_mode_gain"] = dg.MetadataValue.md(
            _mode_gain_table(config.query_mode, means, dense_means)
        )
    if "serving" in query_precision:
        metadata["serving_query_precision"] = query_precision["serving"]
    if golden.problems:
        metadata["golden_set_problems"] = dg.MetadataValue.md(
            "\n".join(f"- line {p.line}: {p.reason}" for p in golden.problems)
        )
    if llm_settings is None:
        metadata["llm_metrics"] = (
            f"not run: no LLM configured ({', '.join(LLM_METRICS)} need the llm resource's model)"
        )
        metadata["answer_source"] = "top retrieved chunk (extractive)"
    else:
        metadata["llm_model"] = llm.model or ""
        # Questions with any judge failure; each failed metric counts against its coverage.
        metadata["llm_failures"] = dg.MetadataValue.int(len(llm_errors))
        metadata["answer_source"] = "LLM answer generated from the retrieved chunks"
        for row in llm_errors[:5]:
            context.log.warning(f"LLM metrics failed for {row['id']}: {row['llm_error']}")
        if len(llm_errors) > 5:
            context.log.warning(f"... and {len(llm_errors) - 5} more questions (see metadata)")
    evaluated = [
        (role, r.collection, m, mean_scores([x for x in rows if x["role"] == role], ALL_METRICS))
        for role, m, r in retrievals
    ]
    params = {
        "k": k,
        "query_mode": config.query_mode,
        "alias": alias,
        "golden_set": str(path),
        "questions": len(questions),
    }
    metadata.update(mlflow.record_rag_quality(context, evaluated, params))
    return dg.MaterializeResult(value=rows, metadata=metadata)


class QualityGateConfig(dg.Config):
    """Thresholds of the quality gate, on mean scores over the golden set."""

    min_hit_rate_at_k: float = Field(
        default=DEFAULT_MINIMUMS["hit_rate_at_k"],
        ge=0,
        le=1,
        description="Least share of questions with a relevant chunk in the top k.",
    )
    min_recall_at_k: float = Field(
        default=DEFAULT_MINIMUMS["recall_at_k"],
        ge=0,
        le=1,
        description="Least mean share of relevant documents found in the top k.",
    )
    min_mrr: float = Field(
        default=DEFAULT_MINIMUMS["mrr"],
        ge=0,
        le=1,
        description="Least mean reciprocal rank of the first relevant chunk.",
    )
    min_ndcg_at_k: float = Field(
        default=DEFAULT_MINIMUMS["ndcg_at_k"], ge=0, le=1, description="Least mean nDCG@k."
    )
    extra_minimums: dict[str, float] = Field(
        default_factory=dict,
        description="Minimums for other metrics, e.g. {'faithfulness': 0.8}; a metric with a "
        "minimum that was not computed fails the gate.",
    )
    max_regression: float = Field(
        default=DEFAULT_MAX_REGRESSION,
        ge=0,
        description="How much lower than the serving index a compared metric may be.",
    )
    compared_metrics: list[str] = Field(
        default_factory=lambda: list(DEFAULT_COMPARED),
        description="Metrics that must be no worse than the serving index's (within the margin).",
    )
    min_coverage: float = Field(
        default=DEFAULT_MIN_COVERAGE,
        ge=0,
        le=1,
        description="Least share of the questions a gated metric applies to that must have a "
        "score (LLM-judge failures and answers missing from the index leave questions "
        "unscored); below it the gate refuses instead of judging on the rest.",
    )

    def thresholds(self) -> GateThresholds:
        """The pure thresholds object."""
        unknown = [
            m for m in [*self.extra_minimums, *self.compared_metrics] if m not in ALL_METRICS
        ]
        if unknown:
            raise ValueError(f"unknown metrics {unknown}; known: {', '.join(ALL_METRICS)}")
        minimums = {
            "hit_rate_at_k": self.min_hit_rate_at_k,
            "recall_at_k": self.min_recall_at_k,
            "mrr": self.min_mrr,
            "ndcg_at_k": self.min_ndcg_at_k,
            **self.extra_minimums,
        }
        return GateThresholds(
            minimums, tuple(self.compared_metrics), self.max_regression, self.min_coverage
        )


@dg.asset_check(
    asset=rag_quality_metrics,
    name="rag_quality_gate",
    blocking=True,
    description="The quality gate: the candidate's mean scores meet the minimums and are no "
    "worse than the serving index's by more than the margin. Blocking: when it fails, "
    "rag_serving_index does not run and the alias keeps pointing at the serving index.",
)
def rag_quality_gate(
    config: QualityGateConfig, rag_quality_metrics: list[dict]
) -> dg.AssetCheckResult:
    """Decide from the stored per-question results."""
    candidate_rows = [r for r in rag_quality_metrics if r["role"] == "candidate"]
    serving_rows = [r for r in rag_quality_metrics if r["role"] == "serving"]
    thresholds = config.thresholds()
    coverage = score_coverage(candidate_rows, ALL_METRICS)
    decision = decide(
        mean_scores(candidate_rows, ALL_METRICS),
        mean_scores(serving_rows, ALL_METRICS) if serving_rows else None,
        thresholds,
        coverage,
    )
    candidate = candidate_rows[0]["collection"] if candidate_rows else "?"
    gated = {*thresholds.minimums, *thresholds.compared}
    metadata: dict[str, object] = {
        "candidate": candidate,
        "serving": serving_rows[0]["collection"] if serving_rows else "none",
        "decision": decision.summary(),
        "rules": dg.MetadataValue.md(decision.table()),
        "failed_rules": dg.MetadataValue.int(len(decision.failures)),
        "judge_failures": dg.MetadataValue.int(sum(1 for r in candidate_rows if r["llm_error"])),
        **{
            f"coverage_{metric}": dg.MetadataValue.float(round(counted.share, 6))
            for metric, counted in coverage.items()
            if metric in gated and counted.applicable
        },
    }
    for failure in decision.failures:
        if failure.shortfall is not None and failure.rule != "coverage":
            metadata[f"shortfall_{failure.metric}"] = dg.MetadataValue.float(
                round(failure.shortfall, 6)
            )
    if not decision.passed:
        metadata["not_promoted"] = (
            f"{candidate} is not promoted: {decision.summary()}; the alias is unchanged"
        )
    return dg.AssetCheckResult(
        passed=decision.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=decision.summary(),
        metadata=metadata,
    )


class RagServingIndexConfig(dg.Config):
    """How the serving alias is moved."""

    keep_previous: int = Field(
        default=2,
        ge=0,
        description="Once-live collections kept for rollback besides the live one; older ones "
        "are deleted after a promotion.",
    )
    require_passed_gate: bool = Field(
        default=True,
        description="Refuse to promote unless the latest rag_quality_gate evaluation passed for "
        "the latest rag_quality_metrics (guards runs that select this asset alone).",
    )


def _gate_passed_for_latest_metrics(instance: dg.DagsterInstance) -> tuple[bool, str]:
    record = instance.get_latest_asset_check_evaluation_record(GATE_CHECK)
    latest = instance.get_latest_materialization_event(GATE_CHECK.asset_key)
    if record is None or record.event is None or latest is None:
        return False, "rag_quality_gate has not been evaluated"
    evaluation = record.event.dagster_event.event_specific_data
    target = evaluation.target_materialization_data
    if target is not None and target.run_id != latest.run_id:
        return False, (
            "the latest rag_quality_gate evaluation is for an older rag_quality_metrics "
            f"(run {target.run_id}, latest {latest.run_id})"
        )
    if not evaluation.passed:
        return False, f"rag_quality_gate failed: {evaluation.description or ''}"
    return True, "rag_quality_gate passed"


def _swap_metadata(result: SwapResult) -> dict[str, object]:
    return {
        "alias": result.alias,
        "live_collection": result.live,
        "action": result.action,
        "previous_live": result.previous_live or "none",
        "kept_collections": dg.MetadataValue.json(result.kept),
        "deleted_collections": dg.MetadataValue.json(result.deleted),
        "message": result.message,
    }


@dg.asset(
    group_name=GROUP,
    kinds={"qdrant"},
    owners=["team:ml-platform"],
    tags={"stage": "serving"},
    code_version="1",  # bump when promotion or retention of collections changes
    retry_policy=external_retry_policy(),
    pool=QDRANT_POOL,
    deps=[rag_quality_metrics],
    description="The index readers use: the alias (qdrant resource's `collection`) pointed at "
    "the collection that passed the quality gate, by an atomic alias swap. The collection it "
    "replaces is kept for rollback (rag_rollback_job). When the candidate is already live (an "
    "in-place incremental refresh) nothing is swapped.",
)
def rag_serving_index(
    context: dg.AssetExecutionContext,
    config: RagServingIndexConfig,
    document_embeddings: dict,
    qdrant: QdrantResource,
) -> dg.MaterializeResult:
    """Promote document_embeddings' collection behind the alias."""
    candidate = document_embeddings["collection"]
    alias = document_embeddings["alias"]
    expected: str | None | AsRead = AS_READ
    if config.require_passed_gate:
        passed, why = _gate_passed_for_latest_metrics(context.instance)
        if not passed:
            raise dg.Failure(
                description=f"{candidate} is not promoted: {why}",
                metadata={"not_promoted": why},
                allow_retries=False,
            )
        evaluated = _evaluated_collection(context.instance)
        if evaluated is not None and evaluated != candidate:
            raise dg.Failure(
                description=f"{candidate} is not promoted: the latest rag_quality_metrics "
                f"evaluated {evaluated}; materialize rag_quality_metrics for {candidate} first",
                allow_retries=False,
            )
        # The gate compared the candidate with the collection live then: promote only
        # if that one is still live (a rollback or another promotion since is refused).
        expected = _evaluated_serving(context.instance)
    with qdrant.open() as store:
        index = BlueGreenIndex(store, alias, keep_previous=config.keep_previous)
        try:
            result = index.promote(candidate, reason=f"run {context.run.run_id}", expected=expected)
        except BlueGreenError as error:
            raise dg.Failure(description=str(error), allow_retries=False) from error
        history = index.history()
    context.log.info(result.message)
    value = {
        "alias": result.alias,
        "live": result.live,
        "action": result.action,
        "previous_live": result.previous_live,
        "kept": result.kept,
        "deleted": result.deleted,
    }
    return dg.MaterializeResult(
        value=value,
        metadata={
            **_swap_metadata(result),
            "history": dg.MetadataValue.md(_history_table(history)),
        },
    )


def _evaluated_collection(instance: dg.DagsterInstance) -> str | None:
    event = instance.get_latest_materialization_event(GATE_CHECK.asset_key)
    if event is None or event.asset_materialization is None:
        return None
    value = event.asset_materialization.metadata.get("collection")
    return getattr(value, "value", None) if value is not None else None


def _evaluated_serving(instance: dg.DagsterInstance) -> str | None | AsRead:
    """The collection live when the latest rag_quality_metrics ran (None: no alias yet)."""
    event = instance.get_latest_materialization_event(GATE_CHECK.asset_key)
    value = event.asset_materialization.metadata.get("serving_collection") if event else None
    if value is None:  # metrics of an older version did not record it
        return AS_READ
    return None if value.value == NO_ALIAS else value.value


def _history_table(events: list[dict], limit: int = 10) -> str:
    if not events:
        return "No promotion recorded."
    lines = ["| at | event | collection | detail |", "| --- | --- | --- | --- |"]
    for event in events[-limit:][::-1]:
        detail = ", ".join(
            f"{k}: {v}" for k, v in event.items() if k not in ("at", "event", "collection") and v
        )
        lines.append(f"| {event['at']} | {event['event']} | {event['collection']} | {detail} |")
    return "\n".join(lines)


class RollbackConfig(dg.Config):
    """Which alias to roll back."""

    alias: str = Field(default="", description="The alias; empty: the qdrant resource's.")
    reason: str = Field(default="manual rollback", description="Recorded in the history.")


@dg.op(
    description="Point the serving alias back at the previous kept collection.", pool=QDRANT_POOL
)
def rollback_rag_serving_index(
    context: dg.OpExecutionContext, config: RollbackConfig, qdrant: QdrantResource
) -> dict:
    """Swap the alias back and report it as an observation of rag_serving_index."""
    alias = config.alias or qdrant.collection
    with qdrant.open() as store:
        try:
            result = BlueGreenIndex(store, alias).rollback(reason=config.reason)
        except BlueGreenError as error:
            raise dg.Failure(description=str(error), allow_retries=False) from error
    context.log.info(result.message)
    context.log_event(
        dg.AssetObservation(
            asset_key=dg.AssetKey("rag_serving_index"), metadata=_swap_metadata(result)
        )
    )
    return {"alias": result.alias, "live": result.live, "rolled_back_from": result.previous_live}


@dg.job(
    description="Roll the RAG serving alias back to the previous collection (blue/green). The "
    "same as `python -m genai_assets.rag.rollback`."
)
def rag_rollback_job():
    """One op: the alias swap back."""
    rollback_rag_serving_index()
