"""rag_quality_metrics: how well the index document_embeddings wrote answers the golden set.

document_embeddings -> rag_quality_metrics -[rag_quality_gate, blocking]-> rag_serving_index

The per-question rows are the asset's value; the gate (``quality_gate.py``) decides
from them, and promotion (``serving.py``) reads the collections this asset evaluated
from its metadata (``collection``, ``serving_collection``).
"""

from pathlib import Path
from typing import Literal

import dagster as dg
from pydantic import Field

from genai_assets import settings
from genai_assets.defs.automation.policies import QDRANT_POOL, external_retry_policy
from genai_assets.defs.rag.metadata import rag_asset, table
from genai_assets.rag.blue_green import BlueGreenIndex
from genai_assets.rag.evaluation.collection import (
    ALL_METRICS,
    LLMSettings,
    QueryEncoders,
    collection_embedding,
    retrieve_all,
    score_retrieval,
)
from genai_assets.rag.evaluation.golden_set import GoldenSetError, load_golden_set
from genai_assets.rag.evaluation.ragas_metrics import LLM_METRICS
from genai_assets.rag.evaluation.retrieval_metrics import RETRIEVAL_METRICS, retrieval_scores
from genai_assets.rag.evaluation.scores import (
    Coverage,
    mean_scores,
    score_coverage,
    worst_questions,
)
from genai_assets.rag.model_files import resolve_model_path
from genai_assets.rag.vector_store import DEFAULT_QUERY_MODE, DEFAULT_RRF_K
from genai_assets.resources.embeddings import SentenceTransformerResource
from genai_assets.resources.mlflow_tracking import MlflowTrackingResource
from genai_assets.resources.openai_api import OpenAICompatibleResource
from genai_assets.resources.qdrant import QdrantResource

DEFAULT_GOLDEN_SET = settings.PACKAGE_DATA / "golden_set.jsonl"
NO_ALIAS = "none (alias not created yet)"
# The worst questions are ranked by these, in order.
WORST_BY = (*RETRIEVAL_METRICS[1:], "non_llm_context_recall")


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
    rrf_k: int = Field(
        default=DEFAULT_RRF_K, ge=1, description="The k of reciprocal rank fusion (hybrid)."
    )
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


def _coverage_table(coverage: dict[str, Coverage]) -> dg.TableMetadataValue:
    columns = [("metric", "string"), ("scored", "int"), ("applies_to", "int"), ("share", "float")]
    return table(
        columns,
        (
            {"metric": m, "scored": c.scored, "applies_to": c.applicable, "share": c.share}
            for m, c in coverage.items()
            if c.applicable
        ),
    )


def _unscored_table(rows: list[dict], limit: int = 20) -> dg.TableMetadataValue:
    """Questions with metrics that apply but were not scored, and why (the first ``limit``)."""
    entries = (
        {"id": row["id"], "metric": metric, "why_not_scored": reason}
        for row in rows
        for metric, reason in (row.get("unscored") or {}).items()
    )
    return table(
        [("id", "string"), ("metric", "string"), ("why_not_scored", "string")],
        list(entries)[:limit],
    )


def _aggregates_metadata(prefix: str, means: dict[str, float | None]) -> dict[str, object]:
    return {
        f"{prefix}{metric}": dg.MetadataValue.float(round(value, 6))
        for metric, value in means.items()
        if value is not None
    }


def _mode_gain_table(
    mode: str, means: dict[str, float | None], dense: dict[str, float | None]
) -> dg.TableMetadataValue:
    """Each retrieval metric in the query mode, dense alone, and the difference."""
    return table(
        [("metric", "string"), (mode, "float"), ("dense_alone", "float"), ("gain", "float")],
        (
            {"metric": m, mode: means[m], "dense_alone": dense[m], "gain": means[m] - dense[m]}
            for m in RETRIEVAL_METRICS
            if means.get(m) is not None and dense.get(m) is not None
        ),
    )


@rag_asset(
    stage="evaluation",
    kinds={"qdrant", "ragas"},
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
    encoders = QueryEncoders(embedder.batch_size)
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
                    encoders.encoder("candidate", model, *built),
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
            serving_encode = encoders.encoder("serving", serving_model, *serving_built)
            serving = retrieve_all(
                store, live, serving_encode, questions, k, config.query_mode, config.rrf_k
            )
            retrievals.append(("serving", serving_model, serving))
        # Once per evaluation, dense search alone on the candidate: what the query mode buys.
        dense_alone = (
            retrieve_all(
                store,
                candidate,
                encoders.encoder("candidate", model, *built),
                questions,
                k,
                "dense",
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
        # Settings, not measurements: text, so the UI does not plot them.
        "k": dg.MetadataValue.text(str(k)),
        "query_mode": config.query_mode,
        "query_precision": encoders.precision["candidate"],
        "questions": dg.MetadataValue.text(str(len(questions))),
        "golden_set": str(path),
        "golden_set_lines_skipped": dg.MetadataValue.text(str(len(golden.problems))),
        "unanswerable_in_index": dg.MetadataValue.int(
            sum(1 for r in candidate_rows if r["reference_contexts_in_index"] == 0)
        ),
        **_aggregates_metadata("", means),
        **_aggregates_metadata("serving_", mean_scores(serving_rows, ALL_METRICS)),
        "metric_coverage": _coverage_table(coverage),
        "unscored_questions": _unscored_table(candidate_rows),
        **{
            f"coverage_{metric}": dg.MetadataValue.float(round(counted.share, 6))
            for metric, counted in coverage.items()
            if counted.applicable and metric not in RETRIEVAL_METRICS
        },
        "worst_questions": table(
            [
                ("id", "string"),
                ("question", "string"),
                *((metric, "float") for metric in WORST_BY),
                ("top_sources", "string"),
            ],
            worst_questions(candidate_rows, WORST_BY, config.worst_questions),
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
        metadata["query_mode_gain"] = _mode_gain_table(config.query_mode, means, dense_means)
    if "serving" in encoders.precision:
        metadata["serving_query_precision"] = encoders.precision["serving"]
    if golden.problems:
        metadata["golden_set_problems"] = table(
            [("line", "int"), ("reason", "string")],
            ({"line": p.line, "reason": p.reason} for p in golden.problems),
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
