"""Run the whole asset graph on this machine with the embedded defaults (``make run``).

1. ``rag_refresh_job``: sample corpus -> the embedded Qdrant Edge index under
   ``$DAGSTER_HOME/storage/index`` (dense + BM25 vectors) -> quality metrics and
   gate -> alias swap.
2. ``fine_tuning_job``: sample training data -> the tiny local model fine-tuned
   -> evaluation against the champion -> gate -> serving config.
3. ``batch_inference_job`` on the sample prompts, against ``transformers serve``
   started on the model the serving config names: a real OpenAI-compatible API
   on 127.0.0.1. The ``llm`` resource points at it for this job only; the RAG
   quality metrics would otherwise ask a tiny model to judge answers.

Runs are recorded in the instance at $DAGSTER_HOME, so they show up in
``make dev``. Exits non-zero when a job fails.
"""

import argparse
import logging
import os
import sys
from pathlib import Path

import dagster as dg

from genai_assets import settings
from genai_assets.batch_inference.local_server import serve_model
from genai_assets.definitions import defs as load_definitions
from genai_assets.fine_tuning import paths as fine_tuning_paths
from genai_assets.fine_tuning.serving import current_entry

log = logging.getLogger("genai_assets.local_run")

SAMPLE_PROMPTS_PARTITION = "sample_prompts.jsonl"
BATCH_PARTITIONS = "batch_prompt_files"


def run_job(name: str, instance: dg.DagsterInstance, **kwargs: object) -> bool:
    """Execute one job of freshly loaded definitions in this process; True on success."""
    job = load_definitions().resolve_job_def(name)
    log.info(f"running {name} ...")
    result = job.execute_in_process(instance=instance, raise_on_error=False, **kwargs)
    for event in result.get_step_failure_events():
        log.error(
            f"{name}: step {event.step_key} failed: {event.event_specific_data.error.message}"
        )
    log.info(f"{name}: {'succeeded' if result.success else 'FAILED'} (run {result.run_id})")
    return result.success


def run_batch_inference(instance: dg.DagsterInstance) -> bool:
    """Serve the promoted model locally and run the sample prompts through it."""
    entry = current_entry(fine_tuning_paths.serving_dir())
    if entry is None:
        log.error(
            "batch_inference_job: no model is being served (the fine-tuning gate never passed)"
        )
        return False
    instance.add_dynamic_partitions(BATCH_PARTITIONS, [SAMPLE_PROMPTS_PARTITION])
    hf_home = settings.storage_root() / "transformers_serve"
    with serve_model(Path(entry["model_dir"]), hf_home=hf_home) as server:
        log.info(f"transformers serve on {server.base_url} serving {server.model}")
        os.environ["OPENAI_BASE_URL"] = server.base_url
        os.environ["OPENAI_MODEL"] = server.model
        try:
            return run_job("batch_inference_job", instance, partition_key=SAMPLE_PROMPTS_PARTITION)
        finally:
            del os.environ["OPENAI_BASE_URL"], os.environ["OPENAI_MODEL"]


def main(argv: list[str] | None = None) -> int:
    """Run the three jobs in order; the exit code says whether all succeeded."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--skip-batch", action="store_true", help="Do not start a model server or run batch."
    )
    args = parser.parse_args(argv)
    # Only this runner's lines: Dagster prints each run's events itself.
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s genai_assets: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    instance = dg.DagsterInstance.get()
    ok = run_job("rag_refresh_job", instance)
    ok = run_job("fine_tuning_job", instance) and ok
    if not args.skip_batch:
        ok = run_batch_inference(instance) and ok
    log.info(
        f"done: {'every job succeeded' if ok else 'a job failed (see above)'}; "
        f"browse the runs with `make dev` (DAGSTER_HOME={settings.dagster_home()})"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
