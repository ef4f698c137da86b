"""File sensors and schedules through Dagster's test contexts, on real folders and S3 (moto)."""

import os

import dagster as dg
import pytest

from genai_assets.defs.automation.schedules import build_schedules
from genai_assets.defs.automation.sensors import (
    build_document_sources_sensor,
    build_training_data_sensor,
)
from genai_assets.defs.fine_tuning.jobs import fine_tuning_job
from genai_assets.resources.documents import DocumentSourcesResource


def tick(sensor, instance, cursor, repository_def=None, **resources):
    """Evaluate one sensor tick; return (run requests, new cursor)."""
    with dg.build_sensor_context(
        instance=instance, cursor=cursor, repository_def=repository_def, resources=resources
    ) as context:
        result = sensor(context)
    if isinstance(result, dg.SkipReason):
        return [], cursor
    assert isinstance(result, dg.SensorResult)
    return list(result.run_requests or []), result.cursor


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


def test_document_files_trigger_exactly_one_run_each(tmp_path, instance, code_location):
    docs = tmp_path / "docs"
    write(docs / "restore.md", "# Restoring a snapshot\n\nRun `skyvault restore`.")
    sources = DocumentSourcesResource(sources=[str(docs)])
    sensor = build_document_sources_sensor(minimum_interval_seconds=30)
    repo = code_location.get_repository_def()

    requests, cursor = tick(sensor, instance, None, repo, document_sources=sources)
    assert len(requests) == 1
    assert requests[0].tags["genai_assets/files_changed"] == "1"
    first_key = requests[0].run_key

    # The same file again: nothing.
    again, cursor_after = tick(sensor, instance, cursor, repo, document_sources=sources)
    assert again == [] and cursor_after == cursor

    # A restarted sensor (a new context with the stored cursor): still nothing.
    restarted, _ = tick(sensor, instance, cursor, repo, document_sources=sources)
    assert restarted == []

    # A sensor retried before its cursor was stored asks for the same run key.
    retried, _ = tick(sensor, instance, None, repo, document_sources=sources)
    assert [r.run_key for r in retried] == [first_key]

    # The file changes: exactly one run with a new key.
    write(docs / "restore.md", "# Restoring a snapshot\n\nRun `skyvault restore --point 3`.")
    changed, cursor = tick(sensor, instance, cursor, repo, document_sources=sources)
    assert len(changed) == 1 and changed[0].run_key != first_key
    assert "1 changed (restore.md)" in changed[0].tags["genai_assets/changes"]

    # A burst of files between two ticks is one run; a removal is a change too.
    for index in range(5):
        write(docs / "guides" / f"vault-{index}.md", f"# Vault guide {index}\n")
    (docs / "restore.md").unlink()
    burst, cursor = tick(sensor, instance, cursor, repo, document_sources=sources)
    assert len(burst) == 1
    assert burst[0].tags["genai_assets/files_changed"] == "6"
    assert tick(sensor, instance, cursor, repo, document_sources=sources)[0] == []


def test_the_sensor_definition_is_on_and_targets_the_rag_job(code_location):
    sensor = code_location.get_repository_def().get_sensor_def("document_sources_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.job_name == "rag_refresh_job"
    assert sensor.minimum_interval_seconds == 60


def test_s3_prefix_changes_trigger_runs(monkeypatch, instance, s3_endpoint, s3_client):
    # The resource builds its own client from the standard AWS variables.
    for name, value in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    s3_client.create_bucket(Bucket="corvid-docs")
    s3_client.put_object(Bucket="corvid-docs", Key="skyvault/keystone.md", Body=b"# Keystone\n")
    sources = DocumentSourcesResource(
        sources=["s3://corvid-docs/skyvault/"], s3_endpoint_url=s3_endpoint
    )
    sensor = build_document_sources_sensor(minimum_interval_seconds=30)

    requests, cursor = tick(sensor, instance, None, document_sources=sources)
    assert len(requests) == 1
    assert tick(sensor, instance, cursor, document_sources=sources)[0] == []
    s3_client.put_object(
        Bucket="corvid-docs", Key="skyvault/keystone.md", Body=b"# Keystone key manager\n"
    )
    s3_client.put_object(Bucket="corvid-docs", Key="skyvault/quotas.md", Body=b"# Quotas\n")
    changed, cursor = tick(sensor, instance, cursor, document_sources=sources)
    assert len(changed) == 1
    summary = changed[0].tags["genai_assets/changes"]
    assert summary == "1 added (quotas.md), 1 changed (keystone.md)"


@dg.asset(group_name="fine_tuning")
def training_dataset_test_double() -> dict:
    """Test double standing in for the fine-tuning group (built on another branch)."""
    return {}


def test_training_data_sensor(tmp_path, monkeypatch, instance):
    monkeypatch.setenv("GENAI_ASSETS_TRAINING_DATA_DIR", str(tmp_path / "training"))
    sensor = build_training_data_sensor(minimum_interval_seconds=30)
    with_group = dg.Definitions(
        assets=[training_dataset_test_double],
        jobs=[fine_tuning_job],
        sensors=[sensor],
    ).get_repository_def()
    without_group = dg.Definitions(jobs=[fine_tuning_job], sensors=[sensor]).get_repository_def()

    requests, cursor = tick(sensor, instance, None, with_group)
    assert requests == [] and cursor is None  # the folder does not exist yet

    write(tmp_path / "training" / "pairs.jsonl", '{"prompt": "p", "completion": "c"}\n')
    write(tmp_path / "training" / "notes.txt", "not training data")
    # While the fine-tuning group has no assets the sensor waits and keeps its cursor.
    assert tick(sensor, instance, None, without_group) == ([], None)

    requests, cursor = tick(sensor, instance, None, with_group)
    assert len(requests) == 1 and requests[0].tags["genai_assets/files_changed"] == "1"
    assert tick(sensor, instance, cursor, with_group)[0] == []
    write(tmp_path / "training" / "more" / "extra.csv", "prompt,completion\np,c\n")
    requests, cursor = tick(sensor, instance, cursor, with_group)
    assert len(requests) == 1 and "extra.csv" in requests[0].tags["genai_assets/changes"]
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING


def test_schedules_read_cron_and_timezone_at_load(monkeypatch, instance, code_location):
    monkeypatch.setenv("GENAI_ASSETS_RAG_REFRESH_CRON", "15 1 * * *")
    monkeypatch.setenv("GENAI_ASSETS_SCHEDULE_TIMEZONE", "America/New_York")
    monkeypatch.delenv("GENAI_ASSETS_RAG_REFRESH_TIMEZONE", raising=False)
    by_name = {schedule.name: schedule for schedule in build_schedules()}
    rag = by_name["nightly_rag_refresh"]
    assert rag.cron_schedule == "15 1 * * *"
    assert rag.execution_timezone == "America/New_York"
    assert rag.job_name == "rag_refresh_job"
    assert rag.default_status == dg.DefaultScheduleStatus.RUNNING
    assert by_name["weekly_fine_tuning"].cron_schedule == "0 3 * * 0"

    repo = code_location.get_repository_def()
    context = dg.build_schedule_context(instance=instance, repository_def=repo)
    request = rag.evaluate_tick(context).run_requests
    assert len(request) == 1 and request[0].tags["genai_assets/trigger"] == "nightly_rag_refresh"


def test_schedule_skips_a_group_without_assets(instance):
    schedule = {s.name: s for s in build_schedules()}["weekly_fine_tuning"]
    repo = dg.Definitions(jobs=[fine_tuning_job], schedules=[schedule]).get_repository_def()
    context = dg.build_schedule_context(instance=instance, repository_def=repo)
    result = schedule.evaluate_tick(context)
    assert not result.run_requests
    assert "fine_tuning" in result.skip_message


def test_code_location_wiring(code_location):
    repo = code_location.get_repository_def()
    assert {"rag_refresh_job", "fine_tuning_job", "batch_inference_job"} <= set(repo.job_names)
    ours = {
        "document_sources_sensor",
        "training_data_sensor",
        "run_failure_alert_sensor",
        "freshness_alert_sensor",
        "freshness_remediation_sensor",
    }
    assert ours <= {sensor.name for sensor in repo.sensor_defs}
    for name in ours:
        assert repo.get_sensor_def(name).default_status == dg.DefaultSensorStatus.RUNNING, name
    for schedule in repo.schedule_defs:
        assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING, schedule.name
    rag_job = repo.get_job("rag_refresh_job")
    assert {"raw_documents", "document_embeddings"} <= {
        key.to_user_string() for key in rag_job.asset_layer.executable_asset_keys
    }
    assert os.environ.get("GENAI_ASSETS_ALERT_WEBHOOK_URL") is None


def test_each_domain_defines_its_own_job(code_location):
    """The jobs the schedules and sensors name come from the domains, each selecting its group."""
    from genai_assets.defs.automation import domains
    from genai_assets.defs.batch_inference.jobs import batch_inference_job
    from genai_assets.defs.rag.jobs import rag_refresh_job

    repo = code_location.get_repository_def()
    for job, group in [
        (rag_refresh_job, domains.RAG_GROUP),
        (fine_tuning_job, domains.FINE_TUNING_GROUP),
        (batch_inference_job, domains.BATCH_INFERENCE_GROUP),
    ]:
        assert job.tags == {domains.DOMAIN_TAG: group}
        resolved = code_location.resolve_job_def(job.name)
        assert set(resolved.asset_layer.executable_asset_keys) == set(
            domains.group_asset_keys(repo, group)
        ), job.name


def test_automation_default_status_follows_the_environment(monkeypatch):
    from genai_assets.defs.automation.schedules import build_schedules
    from genai_assets.defs.automation.sensors import file_sensors

    def statuses():
        instigators = [*file_sensors().sensors, *build_schedules()]
        return {instigator.default_status.value for instigator in instigators}

    monkeypatch.delenv("GENAI_ASSETS_AUTOMATION_DEFAULT_STATUS", raising=False)
    assert statuses() == {"RUNNING"}
    monkeypatch.setenv("GENAI_ASSETS_AUTOMATION_DEFAULT_STATUS", "stopped")
    assert statuses() == {"STOPPED"}
    monkeypatch.setenv("GENAI_ASSETS_AUTOMATION_DEFAULT_STATUS", "sometimes")
    with pytest.raises(ValueError, match="AUTOMATION_DEFAULT_STATUS"):
        file_sensors()


def test_a_new_document_sensor_starts_from_the_last_materialization(
    tmp_path, instance, code_location, monkeypatch
):
    from genai_assets.defs.rag.assets import raw_documents
    from genai_assets.resources.document_store import LocalDocumentStore

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    docs = tmp_path / "docs"
    write(docs / "restore.md", "# Restoring a snapshot\n\nRun `skyvault restore`.")
    write(docs / "quotas.md", "# Quotas\n\nPer-tenant limits.")
    sources = DocumentSourcesResource(sources=[str(docs)])
    sensor = build_document_sources_sensor(minimum_interval_seconds=30)
    repo = code_location.get_repository_def()
    result = dg.materialize(
        [raw_documents],
        instance=instance,
        resources={"document_sources": sources, "document_store": LocalDocumentStore()},
    )
    assert result.success

    # First tick of a new sensor (empty cursor, e.g. the first `dagster dev`): nothing
    # changed since raw_documents read the files, so it records them and launches nothing.
    requests, cursor = tick(sensor, instance, None, repo, document_sources=sources)
    assert requests == [] and cursor is not None
    assert tick(sensor, instance, cursor, repo, document_sources=sources)[0] == []

    # A file changed after that run: a sensor whose cursor was reset asks for it alone.
    write(docs / "quotas.md", "# Quotas\n\nPer-tenant limits, now per region too.")
    requests, _ = tick(sensor, instance, None, repo, document_sources=sources)
    assert len(requests) == 1 and requests[0].tags["genai_assets/files_changed"] == "1"
    assert "quotas.md" in requests[0].tags["genai_assets/changes"]
    # And the recorded cursor sees the same change.
    assert len(tick(sensor, instance, cursor, repo, document_sources=sources)[0]) == 1


@dg.asset(name="training_dataset", group_name="fine_tuning")
def training_dataset_reader_test_double() -> dict:
    """Test double of the fine-tuning asset that reads the training files (its key matters)."""
    return {}


def test_a_new_training_data_sensor_starts_from_the_last_materialization(
    tmp_path, monkeypatch, instance
):
    monkeypatch.setenv("GENAI_ASSETS_TRAINING_DATA_DIR", str(tmp_path / "training"))
    write(tmp_path / "training" / "pairs.jsonl", '{"prompt": "p", "completion": "c"}\n')
    sensor = build_training_data_sensor(minimum_interval_seconds=30)
    defs = dg.Definitions(
        assets=[training_dataset_reader_test_double],
        jobs=[fine_tuning_job],
        sensors=[sensor],
    )
    assert dg.materialize([training_dataset_reader_test_double], instance=instance).success

    requests, cursor = tick(sensor, instance, None, defs.get_repository_def())
    assert requests == [] and cursor is not None
    write(tmp_path / "training" / "more.jsonl", '{"prompt": "q", "completion": "d"}\n')
    requests, _ = tick(sensor, instance, cursor, defs.get_repository_def())
    assert len(requests) == 1 and "more.jsonl" in requests[0].tags["genai_assets/changes"]
