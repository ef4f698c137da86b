"""The batch inference domain's job: one partition (input file) per run."""

import dagster as dg

from genai_assets.defs.automation.domains import (
    BATCH_INFERENCE_GROUP,
    BATCH_INFERENCE_JOB,
    DOMAIN_TAG,
)

batch_inference_job = dg.define_asset_job(
    name=BATCH_INFERENCE_JOB,
    selection=dg.AssetSelection.groups(BATCH_INFERENCE_GROUP),
    description="Run batch LLM inference over the registered prompt batches.",
    tags={DOMAIN_TAG: BATCH_INFERENCE_GROUP},
)
