"""Materialization metrics: the pure mapping, the alert rules (promtool), and the real servers.

The end-to-end tests materialize the real raw_documents over the shipped bad
documents, tick metrics_push_sensor against Debian's prometheus-pushgateway and
read the series back from Debian's prometheus (scraping the gateway, with the
shipped alert rules loaded) through its HTTP API.
"""

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import dagster as dg
import httpx
import pytest
import yaml

from genai_assets import settings
from genai_assets.defs.automation.metrics import metrics_push_sensor
from genai_assets.defs.rag import assets as rag_assets
from genai_assets.defs.resources import build_resources
from genai_assets.rag.evaluation.collection import ALL_METRICS
from genai_assets.resources.documents import DocumentSourcesResource
from genai_assets.resources.prometheus import PushgatewayResource
from genai_assets.tracking import prometheus_metrics as pm
from genai_assets_tests.tracking.conftest import ALERT_RULES, REPO, free_port

DASHBOARD = REPO / "monitoring" / "grafana" / "genai_assets_dashboard.json"
RULE_TESTS = ALERT_RULES.with_name("genai_assets_alerts_test.yml")


def by_name(samples):
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for s in samples}


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        (  # document_embeddings
            {
                "chunks_embedded": 120,
                "chunks_reused": 30,
                "documents_skipped": 2,
                "token_coverage": 0.998,
                "model": "all-MiniLM-L6-v2",
                "model_loaded": True,
            },
            {
                ("genai_assets_chunks", (("outcome", "embedded"),)): 120.0,
                ("genai_assets_chunks", (("outcome", "skipped_unchanged"),)): 30.0,
                ("genai_assets_documents_failed", ()): 2.0,
                ("genai_assets_token_coverage_ratio", ()): 0.998,
            },
        ),
        (  # batch_inference_results
            {
                "items_ok": 97,
                "items_failed": 3,
                "input_tokens": 1000,
                "output_tokens": 400,
                "estimated_cost_usd": 0.0123,
                "latency_p50_s": 0.4,
                "latency_p95_s": 1.5,
                "errors_this_run": {"timeout": 3},
                "failures": "| id | error |",
            },
            {
                ("genai_assets_batch_items", (("status", "ok"),)): 97.0,
                ("genai_assets_batch_items", (("status", "failed"),)): 3.0,
                ("genai_assets_llm_tokens", (("direction", "input"),)): 1000.0,
                ("genai_assets_llm_tokens", (("direction", "output"),)): 400.0,
                ("genai_assets_llm_cost_dollars", ()): 0.0123,
                ("genai_assets_llm_request_latency_seconds", (("quantile", "0.5"),)): 0.4,
                ("genai_assets_llm_request_latency_seconds", (("quantile", "0.95"),)): 1.5,
            },
        ),
        (  # rag_quality_metrics: candidate and serving scores
            {"mrr": 0.9, "serving_mrr": 0.8, "faithfulness": 0.7, "serving_collection": "c1"},
            {
                ("genai_assets_quality_score", (("index", "candidate"), ("metric", "mrr"))): 0.9,
                ("genai_assets_quality_score", (("index", "serving"), ("metric", "mrr"))): 0.8,
                (
                    "genai_assets_quality_score",
                    (("index", "candidate"), ("metric", "faithfulness")),
                ): 0.7,
            },
        ),
        (  # eval_report; a diverged model's non-finite perplexity is left out
            {
                "candidate_perplexity": 3.5,
                "champion_perplexity": float("inf"),
                "base_bleu": 2.0,
                "gate_passed": False,
            },
            {
                ("genai_assets_model_eval_perplexity", (("model", "candidate"),)): 3.5,
                ("genai_assets_model_eval_bleu", (("model", "base"),)): 2.0,
                ("genai_assets_promotion_gate_passed", ()): 0.0,
            },
        ),
    ],
)
def test_metadata_maps_to_gauges_and_ignores_what_is_not_a_number(metadata, expected):
    assert by_name(pm.samples_from_metadata(metadata, ALL_METRICS)) == expected


def test_step_duration_and_timestamp_are_added():
    samples = by_name(pm.samples_from_metadata({}, step_duration_s=2.5, timestamp_s=1e9))
    assert samples == {
        ("genai_assets_step_duration_seconds", ()): 2.5,
        ("genai_assets_last_materialization_timestamp_seconds", ()): 1e9,
    }


def test_metric_names_follow_prometheus_conventions():
    names = {spec.name for spec in pm.METADATA_METRICS.values()}
    names |= {pm.SCORE_METRIC, pm.STEP_DURATION, pm.LAST_MATERIALIZATION}
    for name in names:
        assert re.fullmatch(r"genai_assets_[a-z][a-z0-9_]*", name), name
        assert not name.endswith("_total"), f"{name}: _total is for counters; these are gauges"
    # A name keeps one set of label names, or the push would be refused.
    labels: dict[str, set] = {}
    for spec in pm.METADATA_METRICS.values():
        labels.setdefault(spec.name, set()).add(tuple(k for k, _ in spec.labels))
    assert all(len(v) == 1 for v in labels.values()), labels


def produced_names() -> set[str]:
    names = {spec.name for spec in pm.METADATA_METRICS.values()}
    names |= {pm.SCORE_METRIC, pm.STEP_DURATION, pm.LAST_MATERIALIZATION}
    return names | {f"genai_assets_model_eval_{m}" for m in ("perplexity", "rouge_l", "bleu")}


def test_dashboard_and_alert_rules_only_query_metrics_that_are_pushed():
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    rules = yaml.safe_load(ALERT_RULES.read_text())
    exprs += [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    used = {name for expr in exprs for name in re.findall(r"genai_assets_[a-z0-9_]+", expr)}
    assert used - produced_names() == set()
    assert len(used) >= 12


def test_alert_rules_pass_promtool_check_and_their_unit_tests():
    promtool = shutil.which("promtool") or pytest.fail("promtool missing: install prometheus")
    for command in (["check", "rules", ALERT_RULES.name], ["test", "rules", RULE_TESTS.name]):
        done = subprocess.run(
            [promtool, *command], cwd=ALERT_RULES.parent, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stdout + done.stderr


def bad_documents_resources():
    """The local resources, reading the shipped folder of bad documents (some fail)."""
    return {
        **build_resources("local"),
        "document_sources": DocumentSourcesResource(
            sources=[str(settings.PACKAGE_DATA / "bad_documents")]
        ),
    }


def materialize_bad_documents(instance):
    """The real raw_documents over the bad documents."""
    return dg.materialize(
        [rag_assets.raw_documents], instance=instance, resources=bad_documents_resources()
    )


BATCH = dg.StaticPartitionsDefinition(["a.jsonl", "b.jsonl"])


@dg.asset(name="batch_metrics_source", partitions_def=BATCH)
def batch_metrics_source(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """Not a test double of anything external: a partitioned asset reporting batch_inference
    metadata keys, so partition labels and the failure-rate rule are exercised without an LLM."""
    failed = 20 if context.partition_key == "a.jsonl" else 0
    return dg.MaterializeResult(
        metadata={
            "items_total": 100,
            "items_ok": 100 - failed,
            "items_failed": failed,
            "latency_p95_s": 1.25,
        }
    )


def sensor_context(instance, url, cursor=None):
    defs = dg.Definitions(
        assets=[rag_assets.raw_documents, batch_metrics_source], resources=bad_documents_resources()
    )
    return dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        repository_def=defs.get_repository_def(),
        resources={"prometheus": PushgatewayResource(url=url)},
    )


def query(prometheus, promql, timeout_s=30.0):
    """Poll Prometheus' HTTP API until the query has a result (the scrape is every second)."""
    deadline = time.monotonic() + timeout_s
    while True:
        response = httpx.get(f"{prometheus}/api/v1/query", params={"query": promql}, timeout=5)
        response.raise_for_status()
        result = response.json()["data"]["result"]
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.5)


@pytest.fixture
def instance(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    with dg.DagsterInstance.ephemeral() as instance:
        yield instance


def test_pushed_series_reach_prometheus_labelled_by_asset_partition_and_location(
    instance, pushgateway, prometheus
):
    documents = materialize_bad_documents(instance)
    [event] = documents.get_asset_materialization_events()
    failed = event.materialization.metadata["skipped"].value
    assert failed > 0  # the shipped bad documents
    for partition in BATCH.get_partition_keys():
        dg.materialize([batch_metrics_source], instance=instance, partition_key=partition)

    with sensor_context(instance, pushgateway) as context:
        assert metrics_push_sensor(context) is None  # pushed
    series = query(prometheus, 'genai_assets_documents_failed{asset="raw_documents"}')
    [sample] = series
    assert sample["metric"]["code_location"] == "genai_assets"
    assert sample["metric"]["job"] == "genai_assets"
    assert float(sample["value"][1]) == failed

    rate = query(
        prometheus,
        'genai_assets_batch_items{asset="batch_metrics_source",status="failed"}',
    )
    assert {s["metric"]["partition"]: float(s["value"][1]) for s in rate} == {
        "a.jsonl": 20.0,
        "b.jsonl": 0.0,
    }
    duration = query(prometheus, 'genai_assets_step_duration_seconds{asset="raw_documents"}')
    assert 0 < float(duration[0]["value"][1]) < 600
    stamp = query(
        prometheus,
        'genai_assets_last_materialization_timestamp_seconds{asset="raw_documents"}',
    )
    latest = instance.get_latest_materialization_event(dg.AssetKey("raw_documents"))
    assert abs(float(stamp[0]["value"][1]) - latest.timestamp) < 1

    # The shipped rules, evaluated by Prometheus on the pushed series.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        alerts = httpx.get(f"{prometheus}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
        states = {
            (a["labels"]["alertname"], a["labels"].get("partition")): a["state"] for a in alerts
        }
        if ("GenaiAssetsBatchFailureRate", "a.jsonl") in states and any(
            name == "GenaiAssetsDocumentsFailed" for name, _ in states
        ):
            break
        time.sleep(0.5)
    assert states[("GenaiAssetsDocumentsFailed", None)] == "firing"
    assert states[("GenaiAssetsBatchFailureRate", "a.jsonl")] == "pending"  # for: 5m
    assert ("GenaiAssetsBatchFailureRate", "b.jsonl") not in states

    # Nothing new: the next tick pushes nothing.
    with sensor_context(instance, pushgateway, cursor=context.cursor) as again:
        assert isinstance(metrics_push_sensor(again), dg.SkipReason)


def test_an_unreachable_pushgateway_fails_the_tick_and_keeps_the_cursor(instance):
    materialize_bad_documents(instance)
    with sensor_context(instance, f"http://127.0.0.1:{free_port()}") as context:
        with pytest.raises(OSError, match="Connection refused"):
            metrics_push_sensor(context)
        assert context.cursor is None  # the next tick pushes the same materializations


def test_without_a_pushgateway_the_sensor_skips_with_the_reason(instance):
    with sensor_context(instance, None) as context:
        result = metrics_push_sensor(context)
    assert isinstance(result, dg.SkipReason)
    assert "PROMETHEUS_PUSHGATEWAY_URL" in result.skip_message


def test_definitions_bind_the_sensor_and_both_resources():
    from genai_assets.definitions import defs

    definitions = defs()
    assert definitions.resolve_sensor_def("metrics_push_sensor")
    resources = definitions.resources
    assert isinstance(resources["prometheus"], PushgatewayResource)
    assert Path(ALERT_RULES).is_file()
