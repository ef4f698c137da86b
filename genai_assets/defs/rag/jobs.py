"""The RAG domain's job; the nightly schedule and the document sensor run it."""

import dagster as dg

from genai_assets.defs.automation.domains import DOMAIN_TAG, RAG_GROUP, RAG_REFRESH_JOB

rag_refresh_job = dg.define_asset_job(
    name=RAG_REFRESH_JOB,
    selection=dg.AssetSelection.groups(RAG_GROUP),
    description="Refresh the RAG index: read the document sources, embed new and changed chunks "
    "into Qdrant, measure retrieval quality and promote the index when it passes.",
    tags={DOMAIN_TAG: RAG_GROUP},
)
