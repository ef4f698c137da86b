"""rag_serving_index: the alias readers use, moved to a collection that passed the gate.

Promotion is a blue/green swap of the alias (``genai_assets.rag.blue_green``).
rag_serving_index refuses to promote on its own when the latest gate evaluation
did not pass for the latest metrics, so materializing it alone cannot skip the
gate.
"""

import dagster as dg
from pydantic import Field

from genai_assets.defs.automation.policies import QDRANT_POOL, external_retry_policy
from genai_assets.defs.rag import quality_metrics
from genai_assets.defs.rag.metadata import rag_asset, swap_metadata, table
from genai_assets.defs.rag.quality_gate import GATE_CHECK
from genai_assets.rag.blue_green import AS_READ, AsRead, BlueGreenError, BlueGreenIndex
from genai_assets.resources.qdrant import QdrantResource

HISTORY_COLUMNS = (
    ("at", "string"),
    ("event", "string"),
    ("collection", "string"),
    ("detail", "string"),
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


@rag_asset(
    stage="serving",
    kinds={"qdrant"},
    code_version="1",  # bump when promotion or retention of collections changes
    retry_policy=external_retry_policy(),
    pool=QDRANT_POOL,
    deps=[quality_metrics.rag_quality_metrics],
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
            **swap_metadata(result),
            "history": _history_table(history),
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
    return None if value.value == quality_metrics.NO_ALIAS else value.value


def _history_table(events: list[dict], limit: int = 10) -> dg.TableMetadataValue:
    """The alias's latest events, newest first."""
    return table(
        HISTORY_COLUMNS,
        (
            {
                **event,
                "detail": ", ".join(
                    f"{k}: {v}"
                    for k, v in event.items()
                    if k not in ("at", "event", "collection") and v
                ),
            }
            for event in events[-limit:][::-1]
        ),
    )
