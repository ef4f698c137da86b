"""The Dagster wiring: the partitioned asset, its check, and the sensor that adds partitions."""

import json
import os
from collections import Counter
from pathlib import Path

import dagster as dg
import pytest

from genai_assets import settings
from genai_assets.batch_inference.items import parse_file
from genai_assets.defs.batch_inference.assets import (
    batch_inference_results,
    batch_prompt_files,
    work_dir_for,
)
from genai_assets.defs.batch_inference.sensors import batch_prompt_files_sensor
from genai_assets.resources.openai_api import OpenAICompatibleResource
from genai_assets.resources.prompt_source import PromptSourceResource
from genai_assets_tests.batch_inference.misbehaving_server import MisbehavingOpenAIServer

FAST = {"backoff_base_s": 0.02, "backoff_max_s": 0.2, "max_attempts": 4}


def write_file(folder: Path, name: str, count: int, extra_lines: tuple[str, ...] = ()) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        json.dumps({"id": f"q{n}", "prompt": f"q{n} How do I restore a snapshot?"})
        for n in range(count)
    ]
    path = folder / name
    path.write_text("\n".join([*lines, *extra_lines]) + "\n")
    return path


def materialize(instance, key: str, llm, prompts_dir: Path, config: dict | None = None):
    return dg.materialize(
        [batch_inference_results],
        partition_key=key,
        instance=instance,
        resources={"llm": llm, "batch_prompts": PromptSourceResource(location=str(prompts_dir))},
        run_config={"ops": {"batch_inference_results": {"config": {**FAST, **(config or {})}}}},
        raise_on_error=True,
    )


def test_partition_materializes_every_item_then_resumes(tmp_path):
    prompts = tmp_path / "prompts"
    write_file(prompts, "night.jsonl", 12, extra_lines=('{"id": "bad"}',))
    failing = {"q4"}

    def plan(item, attempt):
        return "500" if item in failing else ("429" if item == "q2" and attempt == 1 else "ok")

    with dg.instance_for_test() as instance, MisbehavingOpenAIServer(plan) as server:
        instance.add_dynamic_partitions(batch_prompt_files.name, ["night.jsonl"])
        llm = OpenAICompatibleResource(base_url=server.base_url, model="gpt-4o-mini")
        result = materialize(instance, "night.jsonl", llm, prompts)

        rows = result.output_for_node("batch_inference_results")
        assert [row["line"] for row in rows] == list(range(1, 14))
        assert [row["status"] for row in rows].count("ok") == 11
        assert rows[4]["error_type"] == "server_error" and rows[4]["attempts"] == 4
        assert rows[12]["error_type"] == "malformed_input"
        assert "line 13" in rows[12]["error"]

        metadata = result.get_asset_materialization_events()[0].materialization.metadata
        assert metadata["items_total"].value == 13
        assert metadata["items_ok"].value == 11
        assert metadata["items_failed"].value == 2
        assert metadata["items_malformed"].value == 1
        assert metadata["rate_limited_this_run"].value == 1
        errors = {
            record.data["error_type"]: record.data["attempts"]
            for record in metadata["errors_this_run"].value.records
        }
        assert errors == {"rate_limited": 1, "server_error": 4}
        assert metadata["limits"].value == (
            "concurrency 8; no request limit; no token limit; up to 4 attempts per item"
        )
        assert metadata["input_tokens"].value > 0
        expected_cost = (
            metadata["input_tokens"].value * 0.15 + metadata["output_tokens"].value * 0.60
        ) / 1e6
        assert metadata["estimated_cost_usd"].value == pytest.approx(expected_cost)
        assert metadata["price_source"].value.startswith("genai-prices ")
        assert metadata["price_source"].value.endswith(": openai gpt-4o-mini")
        assert metadata["latency_p95_s"].value >= metadata["latency_p50_s"].value > 0
        assert metadata["requests_per_s"].value > 0
        failures = metadata["failures"].value
        assert [column.name for column in failures.schema.columns] == [
            "line",
            "id",
            "error_type",
            "attempts",
            "error",
        ]
        assert [record.data["line"] for record in failures.records] == [5, 13]
        assert failures.records[1].data == {
            "line": 13,
            "id": "bad",
            "error_type": "malformed_input",
            "attempts": 0,
            "error": rows[12]["error"],
        }
        assert "this_run" not in metadata
        work = work_dir_for("night.jsonl")
        # instance_for_test points DAGSTER_HOME at its own temporary folder.
        assert work == settings.storage_root() / "batch_inference" / "night.jsonl"
        assert (work / "progress.jsonl").is_file()
        assert metadata["results_path"].value == str(work / "results.jsonl")
        [check] = result.get_asset_check_evaluations()
        assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN

        # The rerun sends only the failed item (now recovering) and passes the check.
        failing.clear()
        server.reset_log()
        rerun = materialize(instance, "night.jsonl", llm, prompts)
        assert set(server.items_sent()) == {"q4"}
        rerun_metadata = rerun.get_asset_materialization_events()[0].materialization.metadata
        assert rerun_metadata["items_sent_this_run"].value == 1
        assert rerun_metadata["items_resumed"].value == 11
        assert rerun_metadata["items_ok"].value == 12
        assert rerun.get_asset_check_evaluations()[0].passed is False  # the malformed line

        # Nothing left to send: said in words, with no rate, latency or wall time plotted.
        server.reset_log()
        idle = materialize(instance, "night.jsonl", llm, prompts)
        assert server.items_sent() == Counter()
        idle_metadata = idle.get_asset_materialization_events()[0].materialization.metadata
        assert idle_metadata["items_sent_this_run"].value == 0
        assert idle_metadata["this_run"].value == (
            "nothing to send: every valid item already succeeded for the same request"
        )
        for name in ("requests_per_s", "latency_p50_s", "latency_p95_s", "wall_s"):
            assert name not in idle_metadata, name


def test_unknown_model_price_is_reported_not_zero(tmp_path):
    prompts = tmp_path / "prompts"
    write_file(prompts, "a.jsonl", 2)
    with dg.instance_for_test() as instance, MisbehavingOpenAIServer() as server:
        instance.add_dynamic_partitions(batch_prompt_files.name, ["a.jsonl"])
        llm = OpenAICompatibleResource(base_url=server.base_url, model="local/tiny")
        result = materialize(instance, "a.jsonl", llm, prompts)
        metadata = result.get_asset_materialization_events()[0].materialization.metadata
        assert metadata["estimated_cost_usd"].value == "no price for model 'local/tiny'"
        priced = materialize(
            instance,
            "a.jsonl",
            llm,
            prompts,
            {
                "model": "local/other",
                "input_usd_per_1m_tokens": 1.0,
                "output_usd_per_1m_tokens": 2.0,
            },
        )
        metadata = priced.get_asset_materialization_events()[0].materialization.metadata
        tokens_in, tokens_out = metadata["input_tokens"].value, metadata["output_tokens"].value
        assert metadata["estimated_cost_usd"].value == pytest.approx(
            (tokens_in + 2 * tokens_out) / 1e6
        )
        assert metadata["items_sent_this_run"].value == 2  # another model: sent again


def test_missing_model_fails_with_a_clear_message(tmp_path):
    prompts = tmp_path / "prompts"
    write_file(prompts, "a.jsonl", 1)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(batch_prompt_files.name, ["a.jsonl"])
        with pytest.raises(dg.Failure, match="needs a model: set OPENAI_MODEL"):
            materialize(instance, "a.jsonl", OpenAICompatibleResource(), prompts)


@dg.op
def noop() -> None:
    pass


@dg.job
def noop_job() -> None:
    noop()


def test_sensor_adds_partitions_and_requests_one_run_per_file_version(tmp_path):
    prompts = tmp_path / "prompts"
    write_file(prompts, "a.jsonl", 2)
    write_file(prompts, "b.jsonl", 2)
    (prompts / "notes.txt").write_text("not an input file")
    source = PromptSourceResource(location=str(prompts))
    llm = OpenAICompatibleResource(model="gpt-4o-mini")
    with dg.instance_for_test() as instance:

        def tick(cursor, llm=llm):
            with dg.build_sensor_context(
                instance=instance, cursor=cursor, resources={"batch_prompts": source, "llm": llm}
            ) as context:
                return batch_prompt_files_sensor(context)

        first = tick(None)
        [add] = first.dynamic_partitions_requests
        assert add.partitions_def_name == batch_prompt_files.name
        assert list(add.partition_keys) == ["a.jsonl", "b.jsonl"]
        assert [r.partition_key for r in first.run_requests] == ["a.jsonl", "b.jsonl"]
        run_keys = [r.run_key for r in first.run_requests]
        assert all(key.startswith(("a.jsonl@", "b.jsonl@")) for key in run_keys)
        instance.add_dynamic_partitions(batch_prompt_files.name, list(add.partition_keys))

        second = tick(first.cursor)
        assert not second.run_requests and not second.dynamic_partitions_requests

        # A changed file gets a new run key; a new file a new partition too.
        write_file(prompts, "a.jsonl", 3)
        os.utime(prompts / "a.jsonl", ns=(1, 1))
        write_file(prompts, "c.jsonl", 1)
        third = tick(first.cursor)
        assert [r.partition_key for r in third.run_requests] == ["a.jsonl", "c.jsonl"]
        assert third.run_requests[0].run_key not in run_keys
        assert list(third.dynamic_partitions_requests[0].partition_keys) == ["c.jsonl"]
        instance.add_dynamic_partitions(batch_prompt_files.name, ["c.jsonl"])

        # A file that changes while its partition runs waits until that run is over.
        write_file(prompts, "b.jsonl", 5)
        os.utime(prompts / "b.jsonl", ns=(2, 2))
        running = instance.create_run_for_job(
            noop_job, tags={"dagster/partition": "b.jsonl"}, status=dg.DagsterRunStatus.STARTED
        )
        busy = tick(third.cursor)
        assert not busy.run_requests and "wait for their running" in busy.skip_reason.skip_message
        instance.report_run_canceled(running)
        freed = tick(third.cursor)
        assert [r.partition_key for r in freed.run_requests] == ["b.jsonl"]
        third = freed

        # Without a model the partition is still added, but no run is requested yet.
        write_file(prompts, "d.jsonl", 1)
        waiting = tick(third.cursor, llm=OpenAICompatibleResource())
        assert not waiting.run_requests
        assert list(waiting.dynamic_partitions_requests[0].partition_keys) == ["d.jsonl"]
        assert "wait for a model" in waiting.skip_reason.skip_message
        assert waiting.cursor is None  # the cursor stays, so d.jsonl runs once a model is set


def test_missing_prompts_folder_is_a_clear_error(tmp_path):
    source = PromptSourceResource(location=str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="batch prompts folder .*nowhere does not exist"):
        source.list_files()


def test_prompt_source_reads_an_s3_prefix(tmp_path, s3_endpoint, s3_client):
    from dagster_aws.s3 import S3Resource

    s3 = S3Resource(
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    s3_client.create_bucket(Bucket="prompts")
    body = b'{"id": "x", "prompt": "x hello"}\n'
    s3_client.put_object(Bucket="prompts", Key="batches/night.jsonl", Body=body)
    s3_client.put_object(Bucket="prompts", Key="batches/readme.md", Body=b"no")
    s3_client.put_object(Bucket="prompts", Key="batches/old/day.jsonl", Body=body)
    source = PromptSourceResource(location="s3://prompts/batches", s3=s3)
    files = source.list_files()
    assert [f.key for f in files] == ["night.jsonl"]
    path = source.fetch("night.jsonl", tmp_path / "cache")
    assert path.read_bytes() == body
    with pytest.raises(ValueError, match="not an input file name"):
        source.fetch("../etc.jsonl", tmp_path / "cache")


def test_definitions_wire_the_batch_domain():
    from genai_assets.definitions import defs

    definitions = defs()
    asset = definitions.resolve_assets_def("batch_inference_results")
    spec = next(iter(asset.specs))
    assert spec.group_name == "batch_inference"
    assert "openai" in spec.kinds
    assert asset.partitions_def == batch_prompt_files
    assert next(iter(asset.op.pools)) == "llm_api"
    assert definitions.resolve_sensor_def("batch_prompt_files_sensor") is not None
    assert {"llm", "batch_prompts"} <= set(definitions.resources)


def test_shipped_sample_prompts_parse_cleanly():
    folder = settings.PACKAGE_DATA / "prompts"
    files = sorted(folder.glob("*.jsonl"))
    if not files:
        pytest.skip(f"no sample prompts in {folder} yet (written by the data task)")
    for path in files:
        items = parse_file(path)
        assert items, f"{path} has no items"
        assert [item.error for item in items if not item.is_valid] == [], path
