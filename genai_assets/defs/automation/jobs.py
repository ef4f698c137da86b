"""One asset job per domain, selected by asset group.

A domain may define its job itself (e.g. fine_tuning_job next to its assets);
definitions.py adds the ones that no domain defined (``add_missing_domain_jobs``),
so the schedules and sensors, which target jobs by name, always find them. A
group selection stays valid while a domain has no assets yet (its schedule and
sensor then skip with that reason), so the code location loads at every stage
of the project, and an asset added to a group joins its job.
"""

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition,
)

RAG_GROUP = "rag"
FINE_TUNING_GROUP = "fine_tuning"
BATCH_INFERENCE_GROUP = "batch_inference"

RAG_REFRESH_JOB = "rag_refresh_job"
FINE_TUNING_JOB = "fine_tuning_job"
BATCH_INFERENCE_JOB = "batch_inference_job"

DOMAIN_JOBS = {
    RAG_REFRESH_JOB: (
        RAG_GROUP,
        "Refresh the RAG index: read the document sources, embed new and changed chunks "
        "into Qdrant, measure retrieval quality and promote the index when it passes.",
    ),
    FINE_TUNING_JOB: (
        FINE_TUNING_GROUP,
        "Fine-tune the model: build the training dataset, train, evaluate against the "
        "promotion gate and publish the serving config.",
    ),
    BATCH_INFERENCE_JOB: (
        BATCH_INFERENCE_GROUP,
        "Run batch LLM inference over the registered prompt batches.",
    ),
}


def domain_job(name: str) -> UnresolvedAssetJobDefinition:
    """The asset job ``name`` of DOMAIN_JOBS: every asset of its group."""
    group, description = DOMAIN_JOBS[name]
    return dg.define_asset_job(
        name=name,
        selection=dg.AssetSelection.groups(group),
        description=description,
        tags={"genai_assets/domain": group},
    )


def add_missing_domain_jobs(defs: dg.Definitions) -> dg.Definitions:
    """``defs`` plus the domain jobs that no module under defs/ defined."""
    defined = {job.name for job in defs.jobs or []}
    missing = [domain_job(name) for name in DOMAIN_JOBS if name not in defined]
    return dg.Definitions.merge(defs, dg.Definitions(jobs=missing)) if missing else defs


def group_asset_keys(repository_def: dg.RepositoryDefinition, group: str) -> list[dg.AssetKey]:
    """The materializable assets of ``group`` in the loaded code location."""
    return sorted(
        (
            node.key
            for node in repository_def.asset_graph.asset_nodes
            if node.group_name == group and node.is_materializable
        ),
        key=lambda key: key.to_user_string(),
    )
