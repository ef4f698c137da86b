"""The three domains' names: asset groups, the jobs each domain defines, the domain tag.

Each domain defines its own job next to its assets (``defs/rag/jobs.py``,
``defs/fine_tuning/jobs.py``, ``defs/batch_inference/jobs.py``); the schedules and
sensors target those jobs by the names here. A job selects its group, so an asset
added to a group joins its job, and the selection stays valid while a group has no
assets (its schedule and sensor then skip with that reason).
"""

import dagster as dg

RAG_GROUP = "rag"
FINE_TUNING_GROUP = "fine_tuning"
BATCH_INFERENCE_GROUP = "batch_inference"

RAG_REFRESH_JOB = "rag_refresh_job"
FINE_TUNING_JOB = "fine_tuning_job"
BATCH_INFERENCE_JOB = "batch_inference_job"

# On every run of a domain job: dagster.yaml and the Helm values limit concurrent
# fine-tuning runs by this tag.
DOMAIN_TAG = "genai_assets/domain"


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
