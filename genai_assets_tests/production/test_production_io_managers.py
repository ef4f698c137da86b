"""The format-aware IO manager, on the local backend and against a real S3 server (moto).

Each backend runs the same tests: every format is written, read back by a
downstream asset in a later run, and readable with plain tools (boto3 or open).
"""

import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import dagster as dg
import pandas as pd
import pytest
from dagster_aws.s3 import S3Resource

from genai_assets.defs.resources import storage_resources
from genai_assets.io_managers import BucketNotFoundError, S3FormatIOManager
from genai_assets_tests.production.sample_graph import (
    CHUNK_FRAME,
    CORPUS_SUMMARY,
    DOCUMENT_ROWS,
    MODEL_FILES,
    VAULT_PARTITIONS,
    build_sample_assets,
    folder_digest,
    vault_rows_for,
)
from genai_assets_tests.production.whole_graph import materialize_whole_graph


@dataclass
class Backend:
    """An IO manager and plain-tool access to what it stored."""

    name: str
    io_manager: Any
    read: Callable[[str], bytes]  # URI -> bytes
    list_under: Callable[[str], dict[str, bytes]]  # folder URI -> {relative path: bytes}
    list_all: Callable[[], list[str]]  # every stored key, relative to the store root


def _local_backend(dagster_home: Path) -> Backend:
    io_manager = storage_resources("local")["io_manager"]
    root = dagster_home / "storage" / "assets"

    def list_under(uri: str) -> dict[str, bytes]:
        folder = Path(uri)
        return {
            p.relative_to(folder).as_posix(): p.read_bytes()
            for p in folder.rglob("*")
            if p.is_file()
        }

    def list_all() -> list[str]:
        return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())

    return Backend("local", io_manager, lambda uri: Path(uri).read_bytes(), list_under, list_all)


def _s3_backend(s3_env) -> Backend:
    io_manager = storage_resources("production")["io_manager"]
    client = s3_env.client

    def split(uri: str) -> tuple[str, str]:
        assert uri.startswith(f"s3://{s3_env.bucket}/"), uri
        return s3_env.bucket, uri[len(f"s3://{s3_env.bucket}/") :]

    def read(uri: str) -> bytes:
        bucket, key = split(uri)
        return client.get_object(Bucket=bucket, Key=key)["Body"].read()

    def keys(prefix: str) -> list[str]:
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=s3_env.bucket, Prefix=prefix
        )
        return [item["Key"] for page in pages for item in page.get("Contents", [])]

    def list_under(uri: str) -> dict[str, bytes]:
        _, prefix = split(uri.rstrip("/") + "/")
        return {
            key[len(prefix) :]: client.get_object(Bucket=s3_env.bucket, Key=key)["Body"].read()
            for key in keys(prefix)
        }

    def list_all() -> list[str]:
        return sorted(key[len("genai_assets/") :] for key in keys("genai_assets/"))

    return Backend("s3", io_manager, read, list_under, list_all)


@pytest.fixture(params=["local", "s3"])
def backend(request, dagster_home: Path) -> Backend:
    if request.param == "local":
        return _local_backend(dagster_home)
    return _s3_backend(request.getfixturevalue("s3_env"))


def _materializations(result) -> dict[tuple[str, str | None], dict[str, Any]]:
    return {
        (m.asset_key.to_user_string(), m.partition): {k: v.value for k, v in m.metadata.items()}
        for m in result.materializations()
    }


def test_every_format_round_trips_through_storage(
    backend: Backend, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    defs = dg.Definitions(
        assets=build_sample_assets(tmp_path / "trained_model"),
        resources={"io_manager": backend.io_manager},
    )
    result = materialize_whole_graph(defs, instance)
    assert all(run.success for run in result.runs)
    stored = _materializations(result)

    # Every output went through the IO manager and says where it lives.
    expected_formats = {
        "document_table": "jsonl",
        "corpus_summary": "json",
        "chunk_frame": "parquet",
        "model_folder": "folder",
        "roundtrip_report": "json",
        "vault_totals": "json",
    }
    for name, fmt in expected_formats.items():
        assert stored[(name, None)]["storage/format"] == fmt
    uri = {name: meta["storage/uri"] for (name, partition), meta in stored.items() if not partition}
    if backend.name == "s3":
        assert all(value.startswith("s3://") for value in uri.values())

    # Readable with plain tools, in the documented formats.
    table_lines = backend.read(uri["document_table"]).decode().splitlines()
    assert [json.loads(line) for line in table_lines] == DOCUMENT_ROWS
    assert stored[("document_table", None)]["storage/rows"] == len(DOCUMENT_ROWS)
    assert json.loads(backend.read(uri["corpus_summary"])) == CORPUS_SUMMARY
    frame = pd.read_parquet(io.BytesIO(backend.read(uri["chunk_frame"])))
    pd.testing.assert_frame_equal(frame, CHUNK_FRAME)
    assert backend.list_under(uri["model_folder"]) == MODEL_FILES

    # The downstream asset, in a later run, received the same values and types.
    report = json.loads(backend.read(uri["roundtrip_report"]))
    assert report["table_equal"] and report["summary_equal"] and report["frame_equal"]
    assert report["frame_dtypes"] == {name: str(t) for name, t in CHUNK_FRAME.dtypes.items()}
    assert report["folder_is_local_dir"]
    assert report["folder_digest"] == folder_digest(tmp_path / "trained_model")

    # Partitions: one object per partition; partition-to-partition and all-partitions loads.
    for partition in VAULT_PARTITIONS:
        rows_uri = stored[("vault_snapshots", partition)]["storage/uri"]
        lines = backend.read(rows_uri).decode().splitlines()
        assert [json.loads(line) for line in lines] == vault_rows_for(partition)
        stats_uri = stored[("vault_snapshot_stats", partition)]["storage/uri"]
        assert json.loads(backend.read(stats_uri)) == {"vault": partition, "snapshots": 3}
    assert json.loads(backend.read(uri["vault_totals"])) == {
        partition: sum(row["bytes"] for row in vault_rows_for(partition))
        for partition in VAULT_PARTITIONS
    }
    loaded = [
        event
        for run in result.runs
        for event in run.all_events
        if event.event_type_value == "LOADED_INPUT"
    ]
    # corpus_summary 1, roundtrip_report 4, vault_snapshot_stats 4, vault_totals 1
    assert len(loaded) == 10


def _single_asset(
    value_fn: Callable[[], Any], name: str = "vault_inventory"
) -> dg.AssetsDefinition:
    @dg.asset(name=name)
    def _asset() -> Any:
        return value_fn()

    return _asset


def test_changing_format_leaves_no_stale_objects(backend: Backend, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    values: list[Any] = [
        [{"vault": "primary"}],
        {"vaults": 1},
        folder,
        folder,  # same folder, new content: the old version's files go away
        pd.DataFrame({"vault": ["primary"]}),
    ]
    expected_keys = [
        ["vault_inventory.jsonl"],
        ["vault_inventory.json"],
        None,  # checked below: manifest + files of one version
        None,
        ["vault_inventory.parquet"],
    ]
    versions = []
    for step, (value, expected) in enumerate(zip(values, expected_keys, strict=True)):
        if isinstance(value, Path):
            (value / "weights.bin").parent.mkdir(parents=True, exist_ok=True)
            (value / "weights.bin").write_bytes(f"step {step}".encode())
        dg.materialize(
            [_single_asset(lambda value=value: value)], resources={"io_manager": backend.io_manager}
        )
        keys = backend.list_all()
        if expected is not None:
            assert keys == expected
        else:
            manifest_keys = [k for k in keys if not k.startswith("vault_inventory.folder/")]
            assert manifest_keys == ["vault_inventory.folder.json"]
            file_keys = [k for k in keys if k.startswith("vault_inventory.folder/")]
            assert len(file_keys) == 1 and file_keys[0].endswith("/weights.bin")
            versions.append(file_keys[0])
    assert versions[0] != versions[1]


def test_unsupported_value_is_a_clear_error(backend: Backend) -> None:
    with pytest.raises(TypeError, match=r"asset vault_inventory: cannot store a builtins\.set"):
        dg.materialize(
            [_single_asset(lambda: {"snapshot-1", "snapshot-2"})],
            resources={"io_manager": backend.io_manager},
        )


def test_loading_what_was_never_stored_is_a_clear_error(backend: Backend) -> None:
    upstream = _single_asset(lambda: [{"vault": "primary"}])

    @dg.asset
    def inventory_size(vault_inventory: list) -> dict:
        return {"rows": len(vault_inventory)}

    with pytest.raises(
        FileNotFoundError, match=r"asset vault_inventory: nothing stored at .*materialize it first"
    ):
        dg.materialize(
            [upstream, inventory_size],
            selection=[inventory_size],
            resources={"io_manager": backend.io_manager},
        )


def test_missing_partitions_fail_unless_allowed(
    backend: Backend, instance: dg.DagsterInstance
) -> None:
    vaults = dg.StaticPartitionsDefinition(["primary", "secondary"])

    @dg.asset(partitions_def=vaults)
    def snapshots(context: dg.AssetExecutionContext) -> list:
        return [{"vault": context.partition_key}]

    @dg.asset
    def strict_total(snapshots: dict) -> dict:
        return {"vaults": sorted(snapshots)}

    @dg.asset(ins={"snapshots": dg.AssetIn(metadata={"allow_missing_partitions": True})})
    def lenient_total(snapshots: dict) -> dict:
        return {"vaults": sorted(snapshots)}

    resources = {"io_manager": backend.io_manager}
    dg.materialize([snapshots], partition_key="primary", resources=resources, instance=instance)
    with pytest.raises(FileNotFoundError, match=r"asset snapshots partition 'secondary'"):
        dg.materialize(
            [snapshots, strict_total],
            selection=[strict_total],
            resources=resources,
            instance=instance,
        )
    result = dg.materialize(
        [snapshots, lenient_total],
        selection=[lenient_total],
        resources=resources,
        instance=instance,
    )
    uri = result.asset_materializations_for_node("lenient_total")[0].metadata["storage/uri"].value
    assert json.loads(backend.read(uri)) == {"vaults": ["primary"]}


def test_missing_bucket_is_a_clear_error(s3_env) -> None:
    io_manager = S3FormatIOManager(
        s3=S3Resource(endpoint_url=s3_env.endpoint, region_name="us-east-1"),
        bucket="corvid-no-such-bucket",
    )
    with pytest.raises(
        BucketNotFoundError, match=r"S3 bucket 'corvid-no-such-bucket' does not exist"
    ):
        dg.materialize([_single_asset(lambda: {"vaults": 1})], resources={"io_manager": io_manager})


def test_missing_bucket_is_created_when_configured(s3_env) -> None:
    bucket = f"{s3_env.bucket}-created"
    io_manager = S3FormatIOManager(
        s3=S3Resource(endpoint_url=s3_env.endpoint, region_name="us-east-1"),
        bucket=bucket,
        prefix="prod/assets",
        create_bucket=True,
    )
    dg.materialize([_single_asset(lambda: {"vaults": 1})], resources={"io_manager": io_manager})
    body = s3_env.client.get_object(Bucket=bucket, Key="prod/assets/vault_inventory.json")["Body"]
    assert json.loads(body.read()) == {"vaults": 1}


def test_s3_folders_download_once_into_the_cache(
    s3_env, dagster_home: Path, tmp_path: Path
) -> None:
    io_manager = storage_resources("production")["io_manager"]
    source = tmp_path / "adapter"
    (source / "adapter_config.json").parent.mkdir(parents=True)
    (source / "adapter_config.json").write_text('{"r": 8}')
    folder_asset = _single_asset(lambda: source, name="adapter")
    seen: list[Path] = []

    @dg.asset
    def adapter_size(adapter: Path) -> dict:
        seen.append(adapter)
        return {"bytes": sum(p.stat().st_size for p in adapter.rglob("*") if p.is_file())}

    resources = {"io_manager": io_manager}
    dg.materialize([folder_asset], resources=resources)
    for _ in range(2):
        dg.materialize([folder_asset, adapter_size], selection=[adapter_size], resources=resources)
    cache = dagster_home / "storage" / "s3_cache" / s3_env.bucket / "genai_assets"
    assert seen[0] == seen[1] and seen[0].is_relative_to(cache)
    assert (seen[0] / "adapter_config.json").read_text() == '{"r": 8}'
    # No staging folder is left behind.
    assert [p.name for p in (cache / "adapter.folder").iterdir()] == [seen[0].name]
    # What boto3 sees is the same file.
    key = f"genai_assets/adapter.folder/{seen[0].name}/adapter_config.json"
    assert (
        boto3.client("s3", endpoint_url=s3_env.endpoint, region_name="us-east-1")
        .get_object(Bucket=s3_env.bucket, Key=key)["Body"]
        .read()
        == b'{"r": 8}'
    )


def test_op_outputs_outside_assets_round_trip(backend: Backend) -> None:
    @dg.op
    def list_vaults() -> list:
        return [{"vault": "primary"}, {"vault": "secondary"}]

    @dg.op
    def count_vaults(vaults: list) -> dict:
        return {"vaults": len(vaults)}

    @dg.job(resource_defs={"io_manager": backend.io_manager})
    def vault_report():
        count_vaults(list_vaults())

    result = vault_report.execute_in_process()
    assert result.output_for_node("count_vaults") == {"vaults": 2}
    run_keys = [
        key for key in backend.list_all() if key.startswith(f"_op_outputs/{result.run_id}/")
    ]
    assert sorted(key.rsplit("/", 2)[1] for key in run_keys) == ["count_vaults", "list_vaults"]


def test_multi_dimensional_partitions(backend: Backend, instance: dg.DagsterInstance) -> None:
    partitions = dg.MultiPartitionsDefinition(
        {
            "site": dg.StaticPartitionsDefinition(["primary", "secondary"]),
            "policy": dg.StaticPartitionsDefinition(["daily"]),
        }
    )

    @dg.asset(partitions_def=partitions)
    def retention_report(context: dg.AssetExecutionContext) -> dict:
        return {"site": context.partition_key.keys_by_dimension["site"]}

    @dg.asset
    def retention_summary(retention_report: dict) -> dict:
        return {key: value["site"] for key, value in retention_report.items()}

    resources = {"io_manager": backend.io_manager}
    for site in ("primary", "secondary"):
        key = dg.MultiPartitionKey({"site": site, "policy": "daily"})
        dg.materialize(
            [retention_report], partition_key=key, resources=resources, instance=instance
        )
    assert "retention_report/policy=daily/site=primary.json" in backend.list_all()
    result = dg.materialize(
        [retention_report, retention_summary],
        selection=[retention_summary],
        resources=resources,
        instance=instance,
    )
    uri = result.asset_materializations_for_node("retention_summary")[0].metadata["storage/uri"]
    assert json.loads(backend.read(uri.value)) == {
        "daily|primary": "primary",
        "daily|secondary": "secondary",
    }
