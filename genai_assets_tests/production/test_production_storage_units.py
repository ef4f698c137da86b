"""Pure pieces of the storage layer: keys, formats, the local store, resource selection."""

from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from dagster_aws.s3 import S3Resource

from genai_assets.defs.resources import storage_resources
from genai_assets.io_managers import LocalFormatIOManager, S3FormatIOManager, formats
from genai_assets.io_managers.storage import TEMP_PREFIX, LocalObjectStore


@pytest.mark.parametrize(
    ("path", "partition", "expected"),
    [
        (["document_chunks"], None, "document_chunks"),
        (["rag", "document_chunks"], None, "rag/document_chunks"),
        (["batch_results"], "2026-11-21", "batch_results/2026-11-21"),
        (["batch_results"], "prompts.jsonl", "batch_results/prompts%2Ejsonl"),
        (["batch_results"], "site/secondary", "batch_results/site%2Fsecondary"),
        (["batch_results"], "quota 50%", "batch_results/quota%2050%25"),
        (["evals"], {"region": "eu", "date": "2026-11-21"}, "evals/date=2026-11-21/region=eu"),
    ],
)
def test_base_keys_are_readable_and_unambiguous(path, partition, expected) -> None:
    assert formats.base_key(path, partition) == expected


def test_a_partition_key_cannot_fake_an_entry_suffix() -> None:
    # Partition "a.folder" of x must not collide with the folder entry of partition "a".
    assert formats.entry_key(
        formats.base_key(["x"], "a.folder"), formats.JSON
    ) != formats.entry_key(formats.base_key(["x"], "a"), formats.FOLDER)


@pytest.mark.parametrize(
    ("value", "fmt"),
    [
        ([{"doc_id": "a"}], formats.JSONL),
        ([], formats.JSONL),
        ({"score": 0.9}, formats.JSON),
        (None, formats.JSON),
        (0.5, formats.JSON),
        (pd.DataFrame({"a": [1]}), formats.PARQUET),
        (Path("/tmp"), formats.FOLDER),
    ],
)
def test_format_follows_the_value(value, fmt) -> None:
    assert formats.format_for(value) == fmt


@pytest.mark.parametrize("value", [{"a", "b"}, object(), b"bytes"])
def test_other_values_are_refused_with_the_supported_list(value) -> None:
    with pytest.raises(TypeError, match="must be a list of JSON-compatible rows"):
        formats.format_for(value)


@pytest.mark.parametrize(
    "rows",
    [
        [],
        [{"text": "Skyline Vault — «restore»", "nested": {"tags": ["a"], "n": None}}],
        [{"line": "first\nsecond"}, {"empty": ""}],
    ],
)
def test_jsonl_round_trips(rows) -> None:
    assert formats.decode_jsonl(formats.encode_jsonl(rows)) == rows


def test_numpy_values_are_stored_as_plain_json() -> None:
    rows = [{"embedding": np.array([0.5, 0.25], dtype=np.float32), "count": np.int64(3)}]
    assert formats.decode_jsonl(formats.encode_jsonl(rows)) == [
        {"embedding": [0.5, 0.25], "count": 3}
    ]


def test_a_row_that_is_not_json_names_its_index() -> None:
    with pytest.raises(TypeError, match=r"row 1 of the table is not JSON-compatible"):
        formats.encode_jsonl([{"ok": 1}, {"when": object()}])


def test_folder_manifest_refuses_files_and_missing_folders(tmp_path: Path) -> None:
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(NotADirectoryError, match="must be a folder"):
        formats.folder_manifest(tmp_path / "weights.bin")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        formats.folder_manifest(tmp_path / "missing")


def test_folder_version_follows_content(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    first = formats.folder_manifest(tmp_path)
    assert formats.folder_manifest(tmp_path)["version"] == first["version"]
    (tmp_path / "config.json").write_text('{"n_layer": 2}')
    assert formats.folder_manifest(tmp_path)["version"] != first["version"]


def test_local_writes_are_atomic(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    store.write_bytes("rag/chunks.jsonl", b"old\n")

    def failing_write(handle) -> None:
        handle.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        store._atomic_write("rag/chunks.jsonl", failing_write)
    assert store.read_bytes("rag/chunks.jsonl") == b"old\n"
    assert [p.name for p in (tmp_path / "rag").iterdir()] == ["chunks.jsonl"]
    (tmp_path / "rag" / f"{TEMP_PREFIX}abc").write_bytes(b"in flight")
    assert store.list_keys("rag/") == ["rag/chunks.jsonl"]


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", "./a"])
def test_keys_cannot_escape_the_store(tmp_path: Path, key: str) -> None:
    with pytest.raises(ValueError, match="invalid storage key"):
        LocalObjectStore(tmp_path).write_bytes(key, b"")


def test_local_environment_stores_files_and_still_offers_s3() -> None:
    resources = storage_resources("local")
    assert isinstance(resources["io_manager"], LocalFormatIOManager)
    assert isinstance(resources["s3"], S3Resource)  # for assets that read S3 sources


def test_production_requires_a_bucket(monkeypatch) -> None:
    monkeypatch.delenv("GENAI_ASSETS_S3_BUCKET", raising=False)
    with pytest.raises(ValueError, match="needs GENAI_ASSETS_S3_BUCKET"):
        storage_resources("production")


def test_production_binds_s3_settings_and_secrets_by_reference(monkeypatch) -> None:
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_DEFAULT_REGION",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GENAI_ASSETS_S3_BUCKET", "corvid-genai-assets")
    monkeypatch.setenv("GENAI_ASSETS_S3_ENDPOINT_URL", "http://minio.storage:9000")
    monkeypatch.setenv("GENAI_ASSETS_S3_CREATE_BUCKET", "true")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    resources = storage_resources("production")
    io_manager = resources["io_manager"]
    assert isinstance(io_manager, S3FormatIOManager)
    assert (io_manager.bucket, io_manager.prefix, io_manager.create_bucket) == (
        "corvid-genai-assets",
        "genai_assets",
        True,
    )
    s3 = resources["s3"]
    assert (s3.endpoint_url, s3.region_name) == ("http://minio.storage:9000", "eu-west-1")
    # No keys in the environment: boto3's default chain (e.g. the pod's IAM role).
    assert s3.aws_access_key_id is None and s3.aws_secret_access_key is None

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-a-real-secret")
    s3 = storage_resources("production")["s3"]
    assert isinstance(s3.aws_secret_access_key, dg.EnvVar)
    assert s3.aws_secret_access_key == "AWS_SECRET_ACCESS_KEY"  # the variable's name, not its value
