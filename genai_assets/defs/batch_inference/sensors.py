"""Adds a partition of ``batch_inference_results`` for each new input file, and runs it."""

import json

import dagster as dg

from genai_assets.defs.automation.domains import BATCH_INFERENCE_JOB
from genai_assets.defs.batch_inference.assets import batch_prompt_files
from genai_assets.resources.openai_api import OpenAICompatibleResource
from genai_assets.resources.prompt_source import PromptSourceResource


@dg.sensor(
    job_name=BATCH_INFERENCE_JOB,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description=(
        "Watches the batch prompts folder or S3 prefix: each new *.jsonl file becomes a "
        "partition of batch_inference_results and gets a run; a changed file gets a new "
        "run that sends only its new or changed items. Stopped by default: runs cost money."
    ),
)
def batch_prompt_files_sensor(
    context: dg.SensorEvaluationContext,
    batch_prompts: PromptSourceResource,
    llm: OpenAICompatibleResource,
) -> dg.SensorResult:
    """Partitions for new files; a run per new or changed file version (run key = name@version)."""
    files = batch_prompts.list_files()
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    known = set(context.instance.get_dynamic_partitions(batch_prompt_files.name))
    new_keys = [f.key for f in files if f.key not in known]
    partition_requests = [batch_prompt_files.build_add_request(new_keys)] if new_keys else []
    changed = [f for f in files if seen.get(f.key) != f.version]
    if not changed:
        return dg.SensorResult(
            dynamic_partitions_requests=partition_requests, skip_reason="no new or changed files"
        )
    if not llm.is_configured:
        # Partitions are added, but runs wait (and the cursor stays) until a model is set.
        return dg.SensorResult(
            dynamic_partitions_requests=partition_requests,
            skip_reason=f"{len(changed)} files wait for a model: set OPENAI_MODEL for `llm`",
        )
    # A file that changed while its partition is still running waits for the next tick:
    # a second run of the same partition would only find the folder locked.
    ready = [f for f in changed if not _partition_busy(context.instance, f.key)]
    for f in ready:
        seen[f.key] = f.version
    if not ready:
        return dg.SensorResult(
            dynamic_partitions_requests=partition_requests,
            skip_reason=f"{len(changed)} changed files wait for their running partitions",
        )
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(partition_key=f.key, run_key=f"{f.key}@{f.version}") for f in ready
        ],
        dynamic_partitions_requests=partition_requests,
        cursor=json.dumps(seen, sort_keys=True),
    )


def _partition_busy(instance: dg.DagsterInstance, partition_key: str) -> bool:
    """Whether a run of this partition is queued or in progress."""
    runs = instance.get_runs_count(
        filters=dg.RunsFilter(
            statuses=[
                dg.DagsterRunStatus.QUEUED,
                dg.DagsterRunStatus.NOT_STARTED,
                dg.DagsterRunStatus.STARTING,
                dg.DagsterRunStatus.STARTED,
            ],
            tags={"dagster/partition": partition_key},
        )
    )
    return runs > 0
