"""File sensors: new or changed documents refresh the RAG index, new training data fine-tunes.

Each tick lists the files (without reading them), compares them with the
snapshot in the cursor and asks for at most one run whose run key is derived
from the change set. A file therefore triggers exactly one run; a sensor
retried or restarted before storing its cursor asks for the same run key and
Dagster skips the duplicate; ``minimum_interval_seconds``
(``GENAI_ASSETS_SENSOR_INTERVAL_S``) turns a burst of files into one run.

A sensor without a cursor (first start, or a reset) starts from the current
state: files that the last materialization of the asset reading them already
saw are recorded, and a run is asked for only when a file changed since then.
Opening the UI on an up-to-date instance therefore launches nothing.
"""

from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import dagster as dg

from genai_assets import settings
from genai_assets.automation import changes
from genai_assets.defs.automation.domains import (
    FINE_TUNING_GROUP,
    FINE_TUNING_JOB,
    RAG_GROUP,
    RAG_REFRESH_JOB,
    group_asset_keys,
)
from genai_assets.resources.documents import DocumentSourcesResource

# The asset that reads each sensor's files: its last run is what a new sensor starts from.
RAW_DOCUMENTS_KEY = dg.AssetKey("raw_documents")
TRAINING_DATASET_KEY = dg.AssetKey("training_dataset")


def last_read_at(context: dg.SensorEvaluationContext, reader: dg.AssetKey) -> float | None:
    """When the run of ``reader``'s last materialization started, or None if it never ran."""
    event = context.instance.get_latest_materialization_event(reader)
    if event is None:
        return None
    record = context.instance.get_run_record_by_id(event.run_id)
    # A file changed while that run was reading may or may not be in it: count it changed.
    if record is not None and record.start_time is not None:
        return record.start_time
    return event.timestamp


def change_request(
    context: dg.SensorEvaluationContext,
    files: Iterable[tuple[str, str, float | None]],
    run_key_prefix: str,
    trigger: str,
    group: str,
    reader: dg.AssetKey,
) -> dg.SensorResult:
    """One run request for the files changed since the cursor, and the new cursor.

    ``files`` are ``(uri, fingerprint, modified timestamp)``; without a cursor the
    comparison starts from what ``reader`` last read (see ``changes.baseline``).
    """
    files = list(files)
    current = changes.snapshot((uri, print_) for uri, print_, _ in files)
    if context.cursor:
        previous = changes.decode_cursor(context.cursor)
    else:
        previous = changes.baseline(files, last_read_at(context, reader))
    change = changes.diff(previous, current)
    if not change:
        return dg.SensorResult(
            skip_reason=f"no change in {len(current)} files", cursor=changes.encode_cursor(current)
        )
    context.log.info(f"{change.summary()}: requesting one run")
    request = dg.RunRequest(
        run_key=change.run_key(run_key_prefix),
        tags={
            "genai_assets/trigger": trigger,
            "genai_assets/domain": group,
            "genai_assets/changes": change.summary(limit=3)[:250],
            "genai_assets/files_changed": str(change.count),
        },
    )
    return dg.SensorResult(run_requests=[request], cursor=changes.encode_cursor(current))


FileList = Iterable[tuple[str, str, float | None]]


def build_file_sensor(
    *,
    name: str,
    job_name: str,
    group: str,
    reader: dg.AssetKey,
    run_key_prefix: str,
    list_files: Callable[[dict[str, Any]], FileList | dg.SkipReason],
    description: str,
    minimum_interval_seconds: int,
    default_status: dg.DefaultSensorStatus,
    required_resource_keys: frozenset[str] = frozenset(),
) -> dg.SensorDefinition:
    """A sensor that runs ``job_name`` once per change of the files ``list_files`` gives.

    ``list_files`` gets the sensor's resources (``required_resource_keys``) by key and
    returns ``(uri, fingerprint, modified timestamp)`` per file, or a SkipReason when
    the files cannot be listed yet (the cursor then stays put).
    """

    @dg.sensor(
        name=name,
        job_name=job_name,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description=description,
        required_resource_keys=set(required_resource_keys),
    )
    def file_sensor(context: dg.SensorEvaluationContext, **resources: Any):
        if context.repository_def and not group_asset_keys(context.repository_def, group):
            # The cursor stays put: the files count as new once the assets exist.
            return dg.SkipReason(f"group {group!r} has no assets yet")
        files = list_files(resources)
        if isinstance(files, dg.SkipReason):
            return files
        return change_request(context, files, run_key_prefix, name, group, reader)

    return file_sensor


def _document_files(resources: dict[str, Any]) -> FileList:
    """Every file under the document sources, listed without reading it."""
    document_sources: DocumentSourcesResource = resources["document_sources"]
    for entry in document_sources.iter_entries():
        modified = (
            datetime.fromisoformat(entry.modified_at).timestamp() if entry.modified_at else None
        )
        yield entry.uri, changes.fingerprint(entry.size_bytes, entry.modified_at), modified


def build_document_sources_sensor(
    minimum_interval_seconds: int,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.RUNNING,
) -> dg.SensorDefinition:
    """The sensor that refreshes the RAG index when documents appear, change or vanish."""
    return build_file_sensor(
        name="document_sources_sensor",
        job_name=RAG_REFRESH_JOB,
        group=RAG_GROUP,
        reader=RAW_DOCUMENTS_KEY,
        run_key_prefix="documents",
        list_files=_document_files,
        required_resource_keys=frozenset({"document_sources"}),
        description="Runs rag_refresh_job when a file under the document sources (local "
        "folders, globs, S3 prefixes) is added, changed or removed. Lists files without "
        f"reading them, at most every {minimum_interval_seconds} s.",
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
    )


def training_files(folder: Path) -> list[tuple[str, str, float]]:
    """``(path, fingerprint, modified timestamp)`` of every training data file under ``folder``."""
    found = {
        path
        for pattern in settings.TRAINING_DATA_PATTERNS
        for path in folder.rglob(pattern)
        if path.is_file()
    }
    files = []
    for path in sorted(found):
        stat = path.stat()
        files.append(
            (str(path), changes.fingerprint(stat.st_size, stat.st_mtime_ns), stat.st_mtime)
        )
    return files


def _training_data_files(resources: dict[str, Any]) -> FileList | dg.SkipReason:
    folder = settings.training_data_dir()
    if not folder.is_dir():
        return dg.SkipReason(f"training data folder {folder} does not exist")
    return training_files(folder)


def build_training_data_sensor(
    minimum_interval_seconds: int,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.RUNNING,
) -> dg.SensorDefinition:
    """The sensor that fine-tunes when training data files appear or change."""
    return build_file_sensor(
        name="training_data_sensor",
        job_name=FINE_TUNING_JOB,
        group=FINE_TUNING_GROUP,
        reader=TRAINING_DATASET_KEY,
        run_key_prefix="training-data",
        list_files=_training_data_files,
        description="Runs fine_tuning_job when a training data file (jsonl, json, csv, parquet) "
        "under GENAI_ASSETS_TRAINING_DATA_DIR (default genai_assets/data/training) is added, "
        "changed or removed.",
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
    )


@dg.definitions
def file_sensors() -> dg.Definitions:
    """The file sensors, with their interval read from the environment now."""
    interval = settings.sensor_interval_s()
    status = (
        dg.DefaultSensorStatus.RUNNING
        if settings.automation_running_by_default()
        else dg.DefaultSensorStatus.STOPPED
    )
    return dg.Definitions(
        sensors=[
            build_document_sources_sensor(interval, status),
            build_training_data_sensor(interval, status),
        ]
    )
