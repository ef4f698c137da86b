"""End to end: ingestion -> rag_quality_metrics -> gate -> rag_serving_index, rollback, LLM judging.

Real embedding model (all-MiniLM-L6-v2, bf16 to halve embedding time; same
retrieval quality), real local Qdrant in a temporary DAGSTER_HOME, the sample
corpus and golden set. One ingestion is shared by the whole module; a second
collection (other chunk overlap, so another settings fingerprint) is the
candidate of the blue/green tests. The only test double is the LLM: an HTTP
server speaking the OpenAI chat-completions protocol that returns well-formed
judge responses (no instruction-following model can run offline here).
"""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import openai
import pytest

from genai_assets import settings
from genai_assets.defs.rag import assets, jobs, quality_gate, quality_metrics
from genai_assets.defs.rag.serving import rag_serving_index
from genai_assets.defs.resources import build_resources
from genai_assets.rag import rollback
from genai_assets.rag.blue_green import BlueGreenIndex
from genai_assets.rag.evaluation.ragas_metrics import RagasSample, llm_judgements
from genai_assets.rag.model_files import PACKAGED_MODEL, resolve_model_path
from genai_assets.rag.vector_store import CollectionSpec
from genai_assets.resources.embeddings import SentenceTransformerResource
from genai_assets.resources.openai_api import OpenAICompatibleResource

ALL = [
    assets.raw_documents,
    assets.document_embeddings,
    quality_metrics.rag_quality_metrics,
    quality_gate.rag_quality_gate,
    rag_serving_index,
]
CANDIDATE_SETTINGS = {"overlap_tokens": 16}  # another fingerprint, near-identical chunks


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A temporary DAGSTER_HOME, one Dagster instance and the local resources, for the module."""
    home = tmp_path_factory.mktemp("dagster_home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DAGSTER_HOME", str(home))
        resources = {
            **build_resources("local"),
            "embedder": SentenceTransformerResource(dtype="bf16", device="cpu"),
            "llm": OpenAICompatibleResource(),
        }
        with dg.DagsterInstance.ephemeral() as instance:
            yield {"home": home, "resources": resources, "instance": instance}


def materialize(
    env, selection=None, embeddings=None, metrics=None, resources=None, gate_config=None
):
    ops = {}
    if gate_config:
        ops["rag_quality_metrics_rag_quality_gate"] = {"config": gate_config}
    if embeddings:
        ops["document_embeddings"] = {"config": embeddings}
    if metrics:
        ops["rag_quality_metrics"] = {"config": metrics}
    return dg.materialize(
        ALL,
        instance=env["instance"],
        resources={**env["resources"], **(resources or {})},
        selection=selection,
        run_config={"ops": ops},
        raise_on_error=False,
    )


def materialized(result) -> dict[str, dict]:
    return {
        event.asset_key.to_user_string(): event.materialization.metadata
        for event in result.get_asset_materialization_events()
    }


def gate(result) -> dg.AssetCheckEvaluation:
    [evaluation] = result.get_asset_check_evaluations()
    return evaluation


def live(env) -> str | None:
    with env["resources"]["qdrant"].open() as client:
        return BlueGreenIndex(client, "documents").live()


@pytest.fixture(scope="module")
def first_run(env):
    """The whole graph on the defaults: ingest the sample corpus, evaluate, gate, promote."""
    result = materialize(env)
    assert result.success
    return result


def test_quality_metrics_on_the_sample_corpus_pass_the_shipped_gate(env, first_run):
    rows = first_run.output_for_node("rag_quality_metrics")
    collection = first_run.output_for_node("document_embeddings")["collection"]
    assert len(rows) == 40
    assert {row["role"] for row in rows} == {"candidate"}
    assert {row["collection"] for row in rows} == {collection}
    for row in rows:
        for metric in ("hit_rate_at_k", "recall_at_k", "mrr", "ndcg_at_k"):
            assert 0.0 <= row[metric] <= 1.0
        # no LLM configured: not run, never zero
        assert row["faithfulness"] is None
        assert row["answer_source"] == "top_chunk"
        assert json.dumps(row)  # a JSON-compatible table row

    metadata = materialized(first_run)["rag_quality_metrics"]
    assert metadata["collection"].value == collection
    assert metadata["model"].value == "sentence-transformers/all-MiniLM-L6-v2"
    # Settings and sizes of the golden set are text: the UI does not plot constants.
    assert (metadata["questions"].value, metadata["k"].value) == ("40", "5")
    assert "not run" in metadata["llm_metrics"].value
    assert "faithfulness" not in metadata
    worst = metadata["worst_questions"]
    assert isinstance(worst, dg.TableMetadataValue)
    assert [c.name for c in worst.schema.columns][:3] == ["id", "question", "recall_at_k"]
    assert len(worst.records) == 10
    shipped = quality_gate.QualityGateConfig()
    minimums = {
        "hit_rate_at_k": shipped.min_hit_rate_at_k,
        "recall_at_k": shipped.min_recall_at_k,
        "mrr": shipped.min_mrr,
        "ndcg_at_k": shipped.min_ndcg_at_k,
    }
    for metric, minimum in minimums.items():
        assert isinstance(metadata[metric], dg.FloatMetadataValue)
        assert metadata[metric].value >= minimum, metric
    for metric in ("non_llm_context_recall", "non_llm_context_precision", "semantic_similarity"):
        assert 0.0 < metadata[metric].value <= 1.0

    evaluation = gate(first_run)
    assert evaluation.passed
    assert evaluation.metadata["serving"].value == "none"
    serving = materialized(first_run)["rag_serving_index"]
    assert serving["action"].value == "promoted"
    assert live(env) == collection


def test_in_place_refresh_keeps_the_live_collection(env, first_run):
    live_before = live(env)
    result = materialize(env, selection=[assets.document_embeddings, rag_serving_index])
    assert result.success
    metadata = materialized(result)
    assert metadata["document_embeddings"]["chunks_embedded"].value == 0
    assert metadata["rag_serving_index"]["action"].value == "already_live"
    assert "in-place refresh" in metadata["rag_serving_index"]["message"].value
    assert live(env) == live_before


def bad_golden_set(path):
    """Questions whose answers are nowhere in the corpus."""
    lines = [
        {
            "id": f"bad{i}",
            "question": question,
            "reference_answer": "Not documented.",
            "relevant_documents": [f"guides/teleportation-{i}.md"],
            "relevant_passages": [f"The teleporter warms up in {i} parsecs."],
        }
        for i, question in enumerate(
            [
                "How do I calibrate the teleporter's flux capacitor?",
                "Which espresso blend does the Skyline Vault cafeteria serve?",
                "How many dragons guard the secondary site?",
            ]
        )
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return path


def test_bad_candidate_is_blocked_good_one_promoted_and_rolled_back(env, first_run, tmp_path):
    old = live(env)
    candidate_selection = [
        assets.document_embeddings,
        quality_metrics.rag_quality_metrics,
        rag_serving_index,
    ]

    # A candidate that fails the gate: the run stops before rag_serving_index.
    bad = materialize(
        env,
        selection=candidate_selection,
        embeddings=CANDIDATE_SETTINGS,
        metrics={"golden_set_path": str(bad_golden_set(tmp_path / "bad.jsonl"))},
    )
    candidate = bad.output_for_node("document_embeddings")["collection"]
    assert candidate != old
    evaluation = gate(bad)
    assert not evaluation.passed
    assert "recall_at_k = 0.000 is below the minimum" in evaluation.description
    # Margins to every threshold are numbers the UI plots; negative is short of it.
    margin = evaluation.metadata["margin_recall_at_k"]
    assert isinstance(margin, dg.FloatMetadataValue)
    assert margin.value == -quality_gate.QualityGateConfig().min_recall_at_k
    rules = evaluation.metadata["rules"]
    assert isinstance(rules, dg.TableMetadataValue)
    minimum = ("recall_at_k", "minimum")
    [recall] = [r.data for r in rules.records if (r.data["metric"], r.data["rule"]) == minimum]
    assert (recall["candidate"], recall["margin"], recall["ok"]) == (0.0, margin.value, False)
    assert "is not promoted" in evaluation.metadata["not_promoted"].value
    assert "rag_serving_index" not in materialized(bad)
    assert materialized(bad)["rag_quality_metrics"]["unanswerable_in_index"].value == 3
    assert live(env) == old

    # Materializing rag_serving_index alone cannot skip the failed gate.
    alone = materialize(env, selection=[rag_serving_index])
    assert not alone.success
    assert live(env) == old

    # The same candidate on the real golden set passes (no re-embedding) and goes live.
    good = materialize(env, selection=candidate_selection, embeddings=CANDIDATE_SETTINGS)
    assert good.success
    assert materialized(good)["document_embeddings"]["chunks_embedded"].value == 0
    evaluation = gate(good)
    assert evaluation.passed
    assert evaluation.metadata["serving"].value == old  # compared with the serving index
    metrics = materialized(good)["rag_quality_metrics"]
    assert metrics["serving_collection"].value == old
    assert isinstance(metrics["serving_recall_at_k"], dg.FloatMetadataValue)
    serving = materialized(good)["rag_serving_index"]
    assert serving["action"].value == "promoted"
    assert serving["previous_live"].value == old
    assert serving["kept_collections"].value == [old]
    assert live(env) == candidate

    # The rollback job swaps back.
    job = jobs.rag_rollback_job.execute_in_process(
        instance=env["instance"], resources={"qdrant": env["resources"]["qdrant"]}
    )
    assert job.success
    assert job.output_for_node("rollback_rag_serving_index") == {
        "alias": "documents",
        "live": old,
        "rolled_back_from": candidate,
    }
    assert live(env) == old

    # Promote again (the gate passed for these metrics), then roll back from the command line.
    again = materialize(env, selection=[rag_serving_index])
    assert again.success
    assert live(env) == candidate
    storage = str(settings.storage_root() / "index")
    assert rollback.main(["--location", storage, "--reason", "test"]) == 0
    assert live(env) == old

    # The gate compared the candidate with `old`. Another promotion moves the alias
    # since: rag_serving_index refuses to swap what it did not expect (compare-and-swap).
    other = "documents-0123456789ab"
    with env["resources"]["qdrant"].open() as store:
        store.create_collection(other, CollectionSpec(384))
        BlueGreenIndex(store, "documents").promote(other, reason="someone else")
    racing = materialize(env, selection=[rag_serving_index])
    assert not racing.success
    failure = racing.get_step_failure_events()[0].event_specific_data.error.message
    assert f"points at {other}, not {old} as expected" in failure
    assert live(env) == other
    with env["resources"]["qdrant"].open() as store:
        BlueGreenIndex(store, "documents").rollback(reason="end of the race")
    assert live(env) == old


class JudgeDouble:
    """TEST DOUBLE of an OpenAI-compatible LLM: a real HTTP server with canned judge replies.

    Answers are "Answer to: <question>"; the faithfulness double makes two
    statements and supports the first (faithfulness 0.5); the relevancy double
    recovers the question from the answer (relevancy 1.0); every context is
    judged useful (context precision 1.0). It counts the requests per kind.
    """

    KINDS = (
        "StatementGeneratorOutput",
        "NLIStatementOutput",
        "AnswerRelevanceOutput",
        "ContextPrecisionOutput",
    )

    def __init__(self, fail_on: str | None = None):
        self.fail_on = fail_on  # questions containing this get HTTP 500 for their answer
        self.calls: dict[str, int] = {}
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def reply(self, messages: list[dict]) -> str:
        prompt = messages[-1]["content"]
        text = "\n".join(m["content"] for m in messages if isinstance(m.get("content"), str))
        kind = next((k for k in self.KINDS if f'"title": "{k}"' in text), "answer")
        with self.lock:
            self.calls[kind] = self.calls.get(kind, 0) + 1
        if kind == "answer":
            return "Answer to: " + prompt.rsplit("Question: ", 1)[1].strip()
        data = json.loads(prompt.rsplit("input: ", 1)[1].rsplit("Output:", 1)[0])
        if kind == "StatementGeneratorOutput":
            reply = {"statements": ["A supported statement.", "An unsupported statement."]}
        elif kind == "NLIStatementOutput":
            reply = {
                "statements": [
                    {"statement": s, "reason": "test double", "verdict": int(i == 0)}
                    for i, s in enumerate(data["statements"])
                ]
            }
        elif kind == "AnswerRelevanceOutput":
            reply = {"question": data["response"].removeprefix("Answer to: "), "noncommittal": 0}
        else:
            reply = {"reason": "test double", "verdict": 1}
        return json.dumps(reply)

    def _handler(self):
        double = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                assert self.path == "/v1/chat/completions", self.path
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if double.fail_on and double.fail_on in body["messages"][-1]["content"]:
                    self.send_error(500, "test double: induced failure")
                    return
                content = double.reply(body["messages"])
                payload = json.dumps(
                    {
                        "id": "chatcmpl-test-double",
                        "object": "chat.completion",
                        "created": 0,
                        "model": body["model"],
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": content},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        return Handler


def judged_by_double(env, golden, gate_config, fail_on=None):
    """rag_quality_metrics (top 3, no serving comparison) and its gate, judged by the double."""
    with JudgeDouble(fail_on=fail_on) as double:
        llm = OpenAICompatibleResource(base_url=double.base_url, model="judge-double", api_key="x")
        result = materialize(
            env,
            selection=[quality_metrics.rag_quality_metrics],
            metrics={"golden_set_path": str(golden), "compare_with_serving": False, "top_k": 3},
            resources={"llm": llm},
            gate_config=gate_config,
        )
    return result, double


def test_llm_judged_metrics_with_a_judge_double(env, first_run, tmp_path):
    lines = (settings.PACKAGE_DATA / "golden_set.jsonl").read_text().splitlines()[:4]
    golden = tmp_path / "golden.jsonl"
    golden.write_text("\n".join(lines) + "\n")
    result, double = judged_by_double(env, golden, {"extra_minimums": {"faithfulness": 0.625}})
    metadata = materialized(result)["rag_quality_metrics"]
    assert metadata["llm_model"].value == "judge-double"
    assert metadata["llm_failures"].value == 0
    assert metadata["faithfulness"].value == 0.5
    assert metadata["answer_relevancy"].value == pytest.approx(1.0, abs=1e-5)
    assert metadata["context_precision"].value == pytest.approx(1.0, abs=1e-6)
    assert "llm_metrics" not in metadata
    # a threshold on an LLM-judged metric, set in the check's run config
    evaluation = gate(result)
    assert not evaluation.passed
    assert "faithfulness = 0.500 is below the minimum 0.625 by 0.125" in evaluation.description
    assert evaluation.metadata["margin_faithfulness"].value == -0.125
    rows = result.output_for_node("rag_quality_metrics")
    assert [row["answer"] for row in rows] == [
        "Answer to: " + json.loads(line)["question"] for line in lines
    ]
    assert {row["answer_source"] for row in rows} == {"llm"}
    # 4 questions: one answer, one statement and one NLI call each, 3 relevancy questions
    # (ragas strictness 3) and one precision verdict per retrieved chunk (k = 3).
    assert double.calls == {
        "answer": 4,
        "StatementGeneratorOutput": 4,
        "NLIStatementOutput": 4,
        "AnswerRelevanceOutput": 12,
        "ContextPrecisionOutput": 12,
    }


def test_llm_failures_are_recorded_per_question_and_fatal_when_all_fail():
    samples = [
        RagasSample("Which port?", ["The port is 8443."], ["The port is 8443."], None, "8443"),
        RagasSample("FAIL this one?", ["Text."], [], None, None),
    ]
    model_path = resolve_model_path(PACKAGED_MODEL)
    with JudgeDouble(fail_on="FAIL") as double:
        client = openai.AsyncOpenAI(base_url=double.base_url, api_key="x", max_retries=0)
        ok, failed = llm_judgements(samples, client, "judge-double", model_path)
        assert ok.error is None
        assert ok.faithfulness == 0.5
        assert failed.answer is None
        assert failed.faithfulness is None
        assert failed.error.startswith("answer generation failed: InternalServerError")
        with pytest.raises(RuntimeError, match="failed for all 1 questions; first error: answer"):
            llm_judgements(samples[1:], client, "judge-double", model_path)


def test_judge_failures_are_counted_and_too_few_judged_questions_refuse_the_gate(
    env, first_run, tmp_path
):
    lines = [
        json.loads(line)
        for line in (settings.PACKAGE_DATA / "golden_set.jsonl").read_text().splitlines()[:4]
    ]
    for line in lines[1:3]:
        line["question"] += " [judge double: fail]"
    golden = tmp_path / "golden.jsonl"
    golden.write_text("".join(json.dumps(line) + "\n" for line in lines))
    # The two judged questions score 0.5, above this minimum, and the questions marked
    # to fail retrieve worse: with no retrieval minimums only coverage refuses.
    no_retrieval_minimums = dict.fromkeys(
        ("min_hit_rate_at_k", "min_recall_at_k", "min_mrr", "min_ndcg_at_k"), 0.0
    )
    result, _ = judged_by_double(
        env,
        golden,
        {**no_retrieval_minimums, "extra_minimums": {"faithfulness": 0.4}},
        fail_on="[judge double: fail]",
    )
    # Judge failures are counted, not fatal, while some questions can be judged.
    metadata = materialized(result)["rag_quality_metrics"]
    assert metadata["llm_failures"].value == 2
    assert metadata["faithfulness"].value == 0.5  # the mean over the survivors...
    assert metadata["coverage_faithfulness"].value == 0.5  # ...which are half the questions
    coverage = {r.data["metric"]: r.data for r in metadata["metric_coverage"].records}
    assert coverage["faithfulness"] == {
        "metric": "faithfulness",
        "scored": 2,
        "applies_to": 4,
        "share": 0.5,
    }
    unscored = [r.data for r in metadata["unscored_questions"].records]
    assert any(
        (u["id"], u["metric"]) == (lines[1]["id"], "faithfulness")
        and u["why_not_scored"].startswith("answer generation failed: Internal")
        for u in unscored
    )
    rows = result.output_for_node("rag_quality_metrics")
    # Without an answer neither the judge nor the answer metrics have anything to score.
    assert rows[1]["unscored"] == {
        "faithfulness": rows[1]["llm_error"],
        "answer_relevancy": rows[1]["llm_error"],
        "context_precision": rows[1]["llm_error"],
        "semantic_similarity": "no answer",
        "rouge_l": "no answer",
    }

    evaluation = gate(result)
    assert not evaluation.passed
    assert evaluation.description == (
        "failed: faithfulness was scored for only 2 of 4 questions (50%), below the required "
        "coverage of 90%; no verdict on the rest"
    )
    assert evaluation.metadata["coverage_faithfulness"].value == 0.5
    assert evaluation.metadata["judge_failures"].value == 2
    assert "is not promoted" in evaluation.metadata["not_promoted"].value


def test_query_vectors_come_from_the_precision_that_built_the_collection(env, first_run, tmp_path):
    built = first_run.output_for_node("document_embeddings")
    assert (built["device"], built["dtype"]) == ("cpu", "bf16")
    lines = (settings.PACKAGE_DATA / "golden_set.jsonl").read_text().splitlines()[:2]
    golden = tmp_path / "golden.jsonl"
    golden.write_text("\n".join(lines) + "\n")
    # The embedder resource now says fp32: the questions must still be embedded at bf16.
    result = materialize(
        env,
        selection=[quality_metrics.rag_quality_metrics],
        metrics={"golden_set_path": str(golden), "compare_with_serving": False},
        resources={"embedder": SentenceTransformerResource(dtype="fp32", device="cpu")},
    )
    assert materialized(result)["rag_quality_metrics"]["query_precision"].value == "bf16 on cpu"


def test_a_query_mode_other_than_dense_reports_dense_alone_beside_it(env, first_run):
    metrics_only = [quality_metrics.rag_quality_metrics]
    hybrid = materialize(env, selection=metrics_only, metrics={"query_mode": "hybrid"})
    assert hybrid.success
    metadata = materialized(hybrid)["rag_quality_metrics"]
    assert metadata["query_mode"].value == "hybrid"
    table = metadata["query_mode_gain"]
    assert [c.name for c in table.schema.columns] == ["metric", "hybrid", "dense_alone", "gain"]
    gains = {r.data["metric"]: r.data for r in table.records}
    for metric in ("hit_rate_at_k", "recall_at_k", "mrr", "ndcg_at_k"):
        assert 0.0 <= metadata[f"dense_only_{metric}"].value <= 1.0
        assert gains[metric]["dense_alone"] == pytest.approx(
            metadata[f"dense_only_{metric}"].value, abs=1e-6
        )

    dense = materialize(env, selection=metrics_only, metrics={"query_mode": "dense"})
    dense_metadata = materialized(dense)["rag_quality_metrics"]
    assert "query_mode_gain" not in dense_metadata
    # Dense alone in hybrid mode is what dense mode itself measures.
    for metric in ("hit_rate_at_k", "mrr"):
        assert metadata[f"dense_only_{metric}"].value == dense_metadata[metric].value
