"""Retries against a real local HTTP server: Retry-After, backoff, permanent errors fail at once."""

import dagster as dg
import httpx
import pytest

from genai_assets.automation.retries import check_response
from genai_assets.defs.automation.policies import (
    QDRANT_POOL,
    external_call,
    external_retry_policy,
)
from genai_assets.defs.rag.assets import raw_documents

# What makes a step external: a kind or a resource that reaches a service outside it.
EXTERNAL_KINDS = frozenset({"openai", "s3", "qdrant", "http", "api", "llm"})
EXTERNAL_RESOURCE_KEYS = frozenset({"document_sources", "document_store", "qdrant", "llm", "s3"})


class FetchConfig(dg.Config):
    """Where the test asset fetches its document."""

    url: str


def release_notes_asset() -> dg.AssetsDefinition:
    """An asset declared like the project's external assets, after the test set the environment.

    Decorator arguments are evaluated when the asset is declared, as the code server
    does when it imports the asset modules.
    """

    @dg.asset(kinds={"http"}, retry_policy=external_retry_policy())
    def skyvault_release_notes(config: FetchConfig) -> dict:
        """Fetches the Skyline Vault release notes through ``external_call`` (a real HTTP call)."""
        with external_call("release notes"):
            response = check_response("release notes", httpx.get(config.url, timeout=5))
        return {"text": response.text}

    return skyvault_release_notes


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


@pytest.fixture
def fast_retries(monkeypatch):
    monkeypatch.setenv("GENAI_ASSETS_RETRY_MAX", "3")
    monkeypatch.setenv("GENAI_ASSETS_RETRY_DELAY_S", "0.2")


def run(instance, url):
    result = dg.materialize(
        [release_notes_asset()],
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
    assert by_name["serving_config"].retry_policy is None  # writes local files only


def test_every_external_asset_declares_the_retry_policy_and_its_pool(code_location):
    """The rule a new asset must follow, on its decorator (nothing adds it afterwards)."""
    shared = external_retry_policy()
    problems = []
    for assets_def in code_location.assets:
        name = assets_def.node_def.name
        kinds = set().union(*(spec.kinds for spec in assets_def.specs))
        resources = assets_def.required_resource_keys & EXTERNAL_RESOURCE_KEYS
        external = sorted((kinds & EXTERNAL_KINDS) | resources)
        if external and assets_def.node_def.retry_policy != shared:
            problems.append(f"{name} calls {external}: add retry_policy=external_retry_policy()")
        if "qdrant" in kinds and assets_def.node_def.pool != QDRANT_POOL:
            problems.append(f"{name} opens Qdrant: add pool=QDRANT_POOL")
    assert not problems, "\n".join(problems)


def test_the_retry_policy_reads_the_environment_when_declared(monkeypatch):
    monkeypatch.setenv("GENAI_ASSETS_RETRY_MAX", "7")
    monkeypatch.setenv("GENAI_ASSETS_RETRY_DELAY_S", "1.5")
    policy = release_notes_asset().node_def.retry_policy
    assert (policy.max_retries, policy.delay) == (7, 1.5)
    monkeypatch.setenv("GENAI_ASSETS_RETRY_MAX", "many")
    with pytest.raises(ValueError, match="GENAI_ASSETS_RETRY_MAX='many' is not an integer"):
        release_notes_asset()


def test_a_busy_url_source_retries_raw_documents(instance, http_server, fast_retries, dagster_home):
    """The real raw_documents asset: a URL source that is rate-limited is retried, not dropped."""
    from genai_assets.resources.document_store import LocalDocumentStore
    from genai_assets.resources.documents import DocumentSourcesResource

    http_server.answer(
        (429, {"Retry-After": "1"}, "busy"),
        (200, {"Content-Type": "text/markdown"}, "# Quotas\n\nEach vault has a quota in GiB.\n"),
    )
    defs = dg.Definitions(
        assets=[raw_documents],
        resources={
            "document_sources": DocumentSourcesResource(sources=[http_server.url + "/q.md"]),
            "document_store": LocalDocumentStore(),
        },
    )
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=instance, raise_on_error=False
    )
    assert result.success
    times = [request.at for request in http_server.received]
    assert len(times) == 2 and times[1] - times[0] >= 1.0
    assert result.output_for_node("raw_documents")[0]["title"] == "Quotas"
