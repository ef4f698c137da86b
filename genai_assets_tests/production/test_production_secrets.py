"""A secret set through the environment never appears in run logs or metadata.

The S3 secret key and the OpenAI API key reach the run through ``dg.EnvVar``
(bound by build_resources("production")); the test proves they were resolved
inside the run, then searches everything the instance recorded: every event of
every run (logs, materialization metadata, errors), the run records and their
job and execution-plan snapshots.
"""

import json
import os
import uuid
from pathlib import Path

import dagster as dg
from dagster_aws.s3 import S3Resource

from genai_assets.defs.resources import build_resources, storage_resources
from genai_assets.io_managers import S3FormatIOManager
from genai_assets.resources.openai_api import OpenAICompatibleResource
from genai_assets_tests.production.sample_graph import build_sample_assets


def _recorded_texts(instance: dg.DagsterInstance) -> dict[str, str]:
    """Everything the instance stored about its runs, serialized, by description."""
    texts: dict[str, str] = {}
    for run in instance.get_runs():
        texts[f"run {run.run_id}"] = dg.serialize_value(run)
        texts[f"job snapshot of {run.run_id}"] = dg.serialize_value(
            instance.get_job_snapshot(run.job_snapshot_id)
        )
        texts[f"plan snapshot of {run.run_id}"] = dg.serialize_value(
            instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id)
        )
        for index, entry in enumerate(instance.all_logs(run.run_id)):
            texts[f"event {index} of run {run.run_id}"] = dg.serialize_value(entry)
    return texts


def _leaks(instance: dg.DagsterInstance, secret: str) -> list[str]:
    return [where for where, text in _recorded_texts(instance).items() if secret in text]


def test_secrets_never_appear_in_logs_or_metadata(
    s3_env, instance, tmp_path: Path, monkeypatch
) -> None:
    openai_key = f"sk-fake-{uuid.uuid4().hex}"
    monkeypatch.setenv("OPENAI_API_KEY", openai_key)
    resources = build_resources("production")
    # Bound as references to the variables, not as their values.
    assert isinstance(resources["s3"].aws_secret_access_key, dg.EnvVar)
    assert isinstance(resources["llm"].api_key, dg.EnvVar)

    @dg.asset
    def credentials_in_use(s3: S3Resource, llm: OpenAICompatibleResource) -> dict:
        # Inside the run the EnvVars resolve to the secrets: they really flow through.
        return {
            "s3_secret_resolved": s3.aws_secret_access_key == os.environ["AWS_SECRET_ACCESS_KEY"],
            "api_key_resolved": llm.api_key == os.environ["OPENAI_API_KEY"],
        }

    # Every storage format, in one run (the unpartitioned part of the sample graph).
    sample = [
        asset
        for asset in build_sample_assets(tmp_path / "model")
        if asset.partitions_def is None and asset.key.path[-1] != "vault_totals"
    ]
    result = dg.materialize([*sample, credentials_in_use], resources=resources, instance=instance)
    assert result.success
    assert len(result.get_asset_materialization_events()) == len(sample) + 1
    stored = s3_env.client.get_object(
        Bucket=s3_env.bucket, Key="genai_assets/credentials_in_use.json"
    )
    assert json.loads(stored["Body"].read()) == {
        "s3_secret_resolved": True,
        "api_key_resolved": True,
    }

    # A failing run (missing bucket) with the same credentials: errors must not leak it either.
    failing_io = S3FormatIOManager(s3=resources["s3"], bucket="corvid-missing-bucket")

    @dg.asset
    def vault_count() -> dict:
        return {"vaults": 2}

    failed = dg.materialize(
        [vault_count], resources={"io_manager": failing_io}, instance=instance, raise_on_error=False
    )
    assert not failed.success

    texts = _recorded_texts(instance)
    assert any("storage/uri" in text for text in texts.values())  # metadata was searched
    assert any("corvid-missing-bucket" in text for text in texts.values())  # errors too
    assert _leaks(instance, s3_env.secret_access_key) == []
    assert _leaks(instance, openai_key) == []


def test_the_search_finds_a_secret_that_was_logged(s3_env, instance) -> None:
    """Control: the same search does see a secret when an asset logs it."""

    @dg.asset
    def careless_asset(context: dg.AssetExecutionContext) -> dict:
        context.log.info(f"key is {os.environ['AWS_SECRET_ACCESS_KEY']}")
        return {}

    dg.materialize([careless_asset], resources=storage_resources("production"), instance=instance)
    assert _leaks(instance, s3_env.secret_access_key)
