"""The code location the instance tests serve through a real dagster daemon.

It holds the project's own raw_documents and document_embeddings (their retry
policy and qdrant_local pool are declared on the assets), and
one job tagged like rag_refresh_job (``genai_assets/domain: rag``) so the run
queue limits of dagster.yaml apply to it. Only the quality and promotion steps
of the full RAG job are left out, to keep the runs short.
"""

import dagster as dg

from genai_assets.defs.automation.domains import DOMAIN_TAG, RAG_GROUP
from genai_assets.defs.rag.assets import document_embeddings, raw_documents
from genai_assets.defs.resources import build_resources
from genai_assets.resources.embeddings import SentenceTransformerResource

ingestion_job = dg.define_asset_job(
    "rag_ingestion_job",
    selection=[raw_documents.key, document_embeddings.key],
    tags={DOMAIN_TAG: RAG_GROUP},
)

defs = dg.Definitions(
    assets=[raw_documents, document_embeddings],
    jobs=[ingestion_job],
    # The resources `make run` binds (the project's IO manager, local Qdrant and
    # document store under DAGSTER_HOME); fp32 and small batches: short, exact runs.
    resources={
        **build_resources("local"),
        "embedder": SentenceTransformerResource(device="cpu", dtype="fp32", batch_size=4),
    },
)
