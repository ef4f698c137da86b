"""The RAG domain's jobs: the refresh, and the rollback of the serving alias.

The nightly schedule and the document sensor run the refresh; a person runs the
rollback (or ``python -m genai_assets.rag.rollback``).
"""

import dagster as dg
from pydantic import Field

from genai_assets.defs.automation.domains import DOMAIN_TAG, RAG_GROUP, RAG_REFRESH_JOB
from genai_assets.defs.automation.policies import QDRANT_POOL
from genai_assets.defs.rag import serving
from genai_assets.defs.rag.metadata import swap_metadata
from genai_assets.rag.blue_green import BlueGreenError, BlueGreenIndex
from genai_assets.resources.qdrant import QdrantResource

rag_refresh_job = dg.define_asset_job(
    name=RAG_REFRESH_JOB,
    selection=dg.AssetSelection.groups(RAG_GROUP),
    description="Refresh the RAG index: read the document sources, embed new and changed chunks "
    "into Qdrant, measure retrieval quality and promote the index when it passes.",
    tags={DOMAIN_TAG: RAG_GROUP},
)


class IndexRollbackConfig(dg.Config):
    """Which alias to roll back."""

    alias: str = Field(default="", description="The alias; empty: the qdrant resource's.")
    reason: str = Field(default="manual rollback", description="Recorded in the history.")


@dg.op(
    description="Point the serving alias back at the previous kept collection.", pool=QDRANT_POOL
)
def rollback_rag_serving_index(
    context: dg.OpExecutionContext, config: IndexRollbackConfig, qdrant: QdrantResource
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
        dg.AssetObservation(asset_key=serving.rag_serving_index.key, metadata=swap_metadata(result))
    )
    return {"alias": result.alias, "live": result.live, "rolled_back_from": result.previous_live}


@dg.job(
    description="Roll the RAG serving alias back to the previous collection (blue/green). The "
    "same as `python -m genai_assets.rag.rollback`."
)
def rag_rollback_job():
    """One op: the alias swap back."""
    rollback_rag_serving_index()
