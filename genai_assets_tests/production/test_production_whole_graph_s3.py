"""The whole graph's IO through the S3 IO manager, against a real local S3 server.

Loads the code location's Definitions (whatever assets they hold when the
test runs), swaps in the production storage resources (S3 via moto, with the
same environment variables as production; every other resource keeps its
local default), and materializes every asset, in dependency order, one run
per wave (see whole_graph.py): every value that a downstream asset reads
crosses runs through S3. Then each stored object must be readable with boto3.

Skip it with ``pytest -m "not whole_graph"`` when a heavy asset needs something
this machine does not have.
"""

import dagster as dg
import pytest

import genai_assets.definitions
from genai_assets.defs.resources import storage_resources
from genai_assets_tests.production.whole_graph import materialize_whole_graph

# Dynamic partitions have no keys until a sensor adds them: name here the keys
# to materialize, per DynamicPartitionsDefinition name, e.g. {"prompt_files": ["sample.jsonl"]}.
DYNAMIC_PARTITION_KEYS: dict[str, list[str]] = {}


def _io_loaded_parents(defs: dg.Definitions) -> dict[dg.AssetKey, set[dg.AssetKey]]:
    """For each asset, the upstream assets whose values it loads through an IO manager."""
    loaded: dict[dg.AssetKey, set[dg.AssetKey]] = {}
    for assets_def in defs.assets or []:
        if not isinstance(assets_def, dg.AssetsDefinition) or not assets_def.is_executable:
            continue
        for input_name, upstream in assets_def.keys_by_input_name.items():
            input_def = assets_def.node_def.input_def_named(input_name)
            if input_def.dagster_type.is_nothing:  # a plain dependency, nothing loaded
                continue
            for key in assets_def.keys:
                loaded.setdefault(key, set()).add(upstream)
    return loaded


@pytest.mark.whole_graph
@pytest.mark.slow
def test_whole_graph_io_through_s3(s3_env, instance, monkeypatch) -> None:
    monkeypatch.setenv("GENAI_ASSETS_ENV", "local")
    local = genai_assets.definitions.defs()
    if not local.assets:
        pytest.skip("the Definitions hold no assets yet")
    storage = storage_resources("production")
    defs = dg.Definitions(
        assets=local.assets,
        asset_checks=local.asset_checks,
        resources={**(local.resources or {}), **storage},
    )
    result = materialize_whole_graph(defs, instance, DYNAMIC_PARTITION_KEYS)
    failed = [run.run_id for run in result.runs if not run.success]
    assert failed == []

    uris: dict[dg.AssetKey, list[str]] = {}
    for materialization in result.materializations():
        uri = materialization.metadata.get("storage/uri")
        if uri is not None:
            uris.setdefault(materialization.asset_key, []).append(uri.value)

    # Every stored object is in the bucket, readable with boto3.
    prefix = f"s3://{s3_env.bucket}/"
    for key, asset_uris in uris.items():
        for uri in asset_uris:
            assert uri.startswith(prefix), f"{key.to_user_string()} was stored at {uri}"
            object_key = uri[len(prefix) :]
            listed = s3_env.client.list_objects_v2(Bucket=s3_env.bucket, Prefix=object_key)
            assert listed.get("KeyCount", 0) > 0, f"{uri} is not in the bucket"
            first = listed["Contents"][0]["Key"]
            s3_env.client.get_object(Bucket=s3_env.bucket, Key=first)["Body"].read()

    # Every value a downstream asset loaded went through S3 (it was stored there).
    for key, parents in _io_loaded_parents(defs).items():
        if key not in result.materialized:
            continue
        missing = [parent.to_user_string() for parent in parents if parent not in uris]
        assert missing == [], f"{key.to_user_string()} loads {missing}, which were not stored in S3"
