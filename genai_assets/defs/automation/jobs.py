"""One asset job per domain, selected by asset group.

A group selection stays valid while a domain has no assets yet (the job is
then empty and its schedule and sensor skip), so the code location loads at
every stage of the project; assets added to a group join its job.
"""

import dagster as dg

RAG_GROUP = "rag"
FINE_TUNING_GROUP = "fine_tuning"
BATCH_INFERENCE_GROUP = "batch_inference"

rag_refresh_job = dg.define_asset_job(
    name="rag_refresh_job",
    selection=dg.AssetSelection.groups(RAG_GROUP),
    description="Refresh the RAG index: read the document sources, embed new and changed "
    "chunks into Qdrant, measure retrieval quality and promote the index when it passes.",
    tags={"genai_assets/domain": RAG_GROUP},
)

fine_tuning_job = dg.define_asset_job(
    name="fine_tuning_job",
    selection=dg.AssetSelection.groups(FINE_TUNING_GROUP),
    description="Fine-tune the model: build the training dataset, train, evaluate against the "
    "promotion gate and publish the serving config.",
    tags={"genai_assets/domain": FINE_TUNING_GROUP},
)

batch_inference_job = dg.define_asset_job(
    name="batch_inference_job",
    selection=dg.AssetSelection.groups(BATCH_INFERENCE_GROUP),
    description="Run batch LLM inference over the registered prompt batches.",
    tags={"genai_assets/domain": BATCH_INFERENCE_GROUP},
)


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
