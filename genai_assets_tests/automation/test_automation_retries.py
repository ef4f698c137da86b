"""Retries against a real local HTTP server: Retry-After, backoff, permanent errors fail at once."""

import dagster as dg
import httpx
import pytest

from genai_assets.automation.retries import check_response
from genai_assets.defs.automation.policies import (
    QDRANT_POOL,
    apply_operations_policy,
    external_call,
)
from genai_assets.defs.rag.assets import raw_documents


class FetchConfig(dg.Config):
    """Where the test asset fetches its document."""

    url: str


@dg.asset(kinds={"http"})
def skyvault_release_notes(config: FetchConfig) -> dict:
    """Fetches the Skyline Vault release notes through ``external_call`` (a real HTTP call)."""
    with external_call("release notes"):
        response = check_response("release notes", httpx.get(config.url, timeout=5))
    return {"text": response.text}


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


@pytest.fixture
def fast_retries(monkeypatch):
    monkeypatch.setenv("GENAI_ASSETS_RETRY_MAX", "3")
    monkeypatch.setenv("GENAI_ASSETS_RETRY_DELAY_S", "0.2")


def run(instance, url):
    assets = apply_operations_policy(dg.Definitions(assets=[skyvault_release_notes])).assets
    result = dg.materialize(
        assets,
        instance=instance,
        raise_on_error=False,
        run_config={"ops": {"skyvault_release_notes": {"config": {"url": url}}}},
    )
    retried = instance.all_logs(result.run_id, of_type=dg.DagsterEventType.STEP_UP_FOR_RETRY)
    return result, retried


def test_rate_limit_then_server_error_then_success(instance, http_server, fast_retries):
    http_server.answer(
        (429, {"Retry-After": "2"}, "slow down"),
        (500, {}, "internal error"),
        (200, {}, "Skyline Vault 4.2: faster Keystone rotation"),
    )
    result, retried = run(instance, http_server.url + "/notes")

    assert result.success
    assert result.output_for_node("skyvault_release_notes")["text"].startswith("Skyline Vault 4.2")
    times = [request.at for request in http_server.received]
    assert len(times) == 3
    assert times[1] - times[0] >= 2.0  # waited as the Retry-After header told
    assert len(retried) == 2
    waits = [event.dagster_event.step_retry_data.seconds_to_wait for event in retried]
    assert waits[0] == 2.0


def test_unauthorized_fails_at_once(instance, http_server, fast_retries):
    http_server.answer((401, {}, '{"error": "invalid api key"}'))
    result, retried = run(instance, http_server.url + "/notes")

    assert not result.success
    assert len(http_server.received) == 1 and retried == []
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    assert "HTTP 401" in failure.step_failure_data.user_failure_data.description
    assert "not retried" in failure.step_failure_data.user_failure_data.description


def test_a_wait_longer_than_allowed_fails_instead_of_holding_the_step(
    instance, http_server, fast_retries, monkeypatch
):
    monkeypatch.setenv("GENAI_ASSETS_RETRY_MAX_WAIT_S", "5")
    http_server.answer((429, {"Retry-After": "3600"}, "come back in an hour"))
    result, retried = run(instance, http_server.url + "/notes")
    assert not result.success and retried == [] and len(http_server.received) == 1


def test_server_errors_exhaust_the_retry_policy(instance, http_server, fast_retries):
    http_server.answer((503, {}, "unavailable"))
    result, retried = run(instance, http_server.url + "/notes")
    assert not result.success
    assert len(retried) == 3 and len(http_server.received) == 4


def test_policy_reaches_external_assets_only(code_location):
    by_name = {item.node_def.name: item.node_def for item in code_location.assets}
    embeddings = by_name["document_embeddings"]
    assert embeddings.retry_policy.backoff == dg.Backoff.EXPONENTIAL
    assert embeddings.retry_policy.jitter == dg.Jitter.PLUS_MINUS
    assert embeddings.pool == QDRANT_POOL
    assert by_name["raw_documents"].pool is None
    # raw_documents reads URL and S3 sources through the document_sources resource.
    assert by_name["raw_documents"].retry_policy == embeddings.retry_policy


def test_an_assets_own_retry_policy_and_pool_are_kept():
    own = dg.RetryPolicy(max_retries=1)

    @dg.asset(kinds={"openai"}, retry_policy=own, pool="llm_api")
    def answers() -> dict:
        return {}

    (mapped,) = apply_operations_policy(dg.Definitions(assets=[answers])).assets
    assert mapped.node_def.retry_policy is own
    assert mapped.node_def.pool == "llm_api"


def test_a_busy_url_source_retries_raw_documents(instance, http_server, fast_retries, dagster_home):
    """The real raw_documents asset: a URL source that is rate-limited is retried, not dropped."""
    from genai_assets.resources.document_store import LocalDocumentStore
    from genai_assets.resources.documents import DocumentSourcesResource

    http_server.answer(
        (429, {"Retry-After": "1"}, "busy"),
        (200, {"Content-Type": "text/markdown"}, "# Quotas\n\nEach vault has a quota in GiB.\n"),
    )
    defs = apply_operations_policy(
        dg.Definitions(
            assets=[raw_documents],
            resources={
                "document_sources": DocumentSourcesResource(sources=[http_server.url + "/q.md"]),
                "document_store": LocalDocumentStore(),
            },
        )
    )
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=instance, raise_on_error=False
    )
    assert result.success
    times = [request.at for request in http_server.received]
    assert len(times) == 2 and times[1] - times[0] >= 1.0
    assert result.output_for_node("raw_documents")[0]["title"] == "Quotas"


def test_an_asset_a_sensor_holds_as_an_object_is_left_alone():
    @dg.asset(kinds={"openai"})
    def summaries() -> dict:
        return {}

    @dg.sensor(target=[summaries])
    def summaries_sensor(context):
        return None

    defs = apply_operations_policy(dg.Definitions(assets=[summaries], sensors=[summaries_sensor]))
    defs.get_repository_def()  # loads: no second object with the same key
    assert defs.assets == [summaries]
    assert summaries.node_def.retry_policy is None
