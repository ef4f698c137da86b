"""End to end: the asset against a real `transformers serve` with a tiny local chat model."""

import json

import dagster as dg
import pytest

from genai_assets.defs.batch_inference.assets import batch_inference_results, batch_prompt_files
from genai_assets.resources.openai_api import OpenAICompatibleResource
from genai_assets.resources.prompt_source import PromptSourceResource

REQUESTS = [
    {"id": "restore", "prompt": "How do I restore a snapshot with skyvault?"},
    {
        "id": "keystone",
        "messages": [
            {"role": "system", "content": "You answer questions about Skyline Vault."},
            {"role": "user", "content": "What does the Keystone key manager do?"},
        ],
        "max_tokens": 4,
    },
    {"id": "port", "prompt": "Which port does Skyline Vault use?", "temperature": 0.7},
    {"id": "quota", "prompt": "How are quotas enforced?", "max_tokens": 6},
]


@pytest.mark.slow
def test_batch_against_transformers_serve(transformers_server, tmp_path):
    base_url, model = transformers_server
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    lines = [json.dumps(request) for request in REQUESTS]
    lines.insert(2, '{"id": "broken", "prompt": 42}')
    (prompts / "e2e.jsonl").write_text("\n".join(lines) + "\n")
    resources = {
        "llm": OpenAICompatibleResource(base_url=base_url, model=model, timeout_s=60),
        "batch_prompts": PromptSourceResource(location=str(prompts)),
    }
    run_config = {
        "ops": {
            "batch_inference_results": {
                "config": {"concurrency": 2, "max_tokens": 8, "requests_per_minute": 600}
            }
        }
    }
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(batch_prompt_files.name, ["e2e.jsonl"])
        result = dg.materialize(
            [batch_inference_results],
            partition_key="e2e.jsonl",
            instance=instance,
            resources=resources,
            run_config=run_config,
        )
        rows = result.output_for_node("batch_inference_results")
        assert [row["id"] for row in rows] == ["restore", "keystone", "broken", "port", "quota"]
        assert rows[2]["status"] == "failed" and "line 3: 'prompt' must be" in rows[2]["error"]
        budgets = {"restore": 8, "keystone": 4, "port": 8, "quota": 6}
        for row in (r for r in rows if r["id"] != "broken"):
            assert row["status"] == "ok", row
            assert isinstance(row["output"], str)
            assert row["input_tokens"] > 0
            assert 0 < row["output_tokens"] <= budgets[row["id"]]
            assert row["finish_reason"] in ("stop", "length")
            assert row["attempts"] == 1 and row["latency_s"] > 0
        metadata = result.get_asset_materialization_events()[0].materialization.metadata
        assert metadata["items_ok"].value == 4
        assert metadata["output_tokens"].value == sum(
            r["output_tokens"] for r in rows if r["status"] == "ok"
        )
        assert metadata["estimated_cost_usd"].value == f"no price for model {model!r}"

        rerun = dg.materialize(
            [batch_inference_results],
            partition_key="e2e.jsonl",
            instance=instance,
            resources=resources,
            run_config=run_config,
        )
        rerun_metadata = rerun.get_asset_materialization_events()[0].materialization.metadata
        assert rerun_metadata["items_sent_this_run"].value == 0
        assert rerun.output_for_node("batch_inference_results") == rows


def test_serve_model_rejects_a_folder_that_is_not_a_model(tmp_path):
    from genai_assets.batch_inference.local_server import serve_model

    with (
        pytest.raises(FileNotFoundError, match="is not a model folder"),
        serve_model(tmp_path, tmp_path / "hf"),
    ):
        pass
