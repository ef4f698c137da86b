"""The fine-tuning part of the code location: graph, groups, kinds, gate, pool, jobs, resources."""

import dagster as dg

from genai_assets.definitions import defs
from genai_assets.defs.resources import build_resources
from genai_assets.resources.training_runner import TrainingRunnerResource

EXPECTED_DEPS = {
    "base_model": set(),
    "training_dataset": {"base_model"},
    "fine_tuned_model": {"base_model", "training_dataset"},
    "eval_report": {"base_model", "training_dataset", "fine_tuned_model"},
    "serving_config": {"eval_report"},
}


def test_fine_tuning_graph_is_pinned():
    graph = defs().resolve_asset_graph()
    keys = {
        k.to_user_string()
        for k in graph.get_all_asset_keys()
        if graph.get(k).group_name == "fine_tuning"
    }
    assert keys == set(EXPECTED_DEPS)
    for name, parents in EXPECTED_DEPS.items():
        node = graph.get(dg.AssetKey(name))
        assert {p.to_user_string() for p in node.parent_keys} == parents, name
        assert node.description
    assert graph.get(dg.AssetKey("fine_tuned_model")).kinds == {"pytorch", "huggingface"}


def test_promotion_gate_is_a_blocking_check_on_eval_report():
    definitions = defs()
    check_key = dg.AssetCheckKey(dg.AssetKey("eval_report"), "promotion_gate")
    checks = definitions.resolve_asset_graph().asset_check_keys
    assert check_key in checks
    assert definitions.resolve_asset_graph().get(check_key).blocking
    contract = dg.AssetCheckKey(dg.AssetKey("training_dataset"), "quarantine_rate")
    assert not definitions.resolve_asset_graph().get(contract).blocking
    disjoint = dg.AssetCheckKey(dg.AssetKey("training_dataset"), "eval_split_disjoint")
    assert definitions.resolve_asset_graph().get(disjoint).blocking


def test_jobs_and_resources(monkeypatch):
    monkeypatch.setenv("GENAI_ASSETS_S3_BUCKET", "artifacts")  # production needs a bucket
    monkeypatch.setenv("TRAINING_IMAGE", "registry.example.com/genai-assets:1.0")
    definitions = defs()
    rollback = definitions.resolve_job_def("rollback_serving_config")
    # Under the one-fine-tuning-run limit of dagster.yaml, like fine_tuning_job.
    assert rollback.tags["genai_assets/domain"] == "fine_tuning"
    graph_job = definitions.resolve_job_def("fine_tuning_job")
    assert "eval_report_promotion_gate" in graph_job.graph.node_names()
    assert build_resources("local")["training_runner"].backend == "subprocess"
    production = build_resources("production")["training_runner"]
    assert isinstance(production, TrainingRunnerResource)
    assert production.backend == "kubernetes"
    assert production.image == "registry.example.com/genai-assets:1.0"
