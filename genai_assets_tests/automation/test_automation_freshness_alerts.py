"""Freshness going stale and its reactions, and run-failure alerts, against real local servers.

The freshness daemon's own evaluation runs against a real instance with the
project's code location loaded in process; time is moved forward with
Dagster's ``freeze_time`` instead of waiting for the window to pass.
"""

import asyncio
import datetime
import os

import dagster as dg
import pytest
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.test_utils import create_test_daemon_workspace_context, freeze_time
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
from dagster._daemon.freshness import FreshnessDaemon

from genai_assets.defs.automation.alerts import freshness_alert_sensor, run_failure_alert_sensor

EMBEDDINGS = dg.AssetKey("document_embeddings")
CODE_LOCATION_NAME = "genai-assets"  # [tool.dg.project] code_location_name


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


def evaluate_freshness(instance: dg.DagsterInstance) -> None:
    """One iteration of the freshness daemon over the project's code location."""
    origin = LoadableTargetOrigin(
        module_name="genai_assets.definitions", working_directory=os.getcwd()
    )
    # Under the project's code location name, as a code server registers it.
    location = InProcessCodeLocationOrigin(origin, location_name=CODE_LOCATION_NAME)
    target = InProcessWorkspaceLoadTarget(location)
    with create_test_daemon_workspace_context(target, instance) as workspace:
        asyncio.run(FreshnessDaemon()._evaluate_assets(workspace))  # noqa: SLF001


def freshness_state(instance, key=EMBEDDINGS) -> str:
    return instance.get_freshness_state_records([key])[key].freshness_state.value


def alert_tick(instance, code_location, cursor):
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, repository_def=code_location.get_repository_def()
    )
    freshness_alert_sensor(context)
    return context.cursor


def test_policies_are_on_the_assets_that_exist(code_location):
    graph = code_location.get_repository_def().asset_graph
    policy = graph.get(EMBEDDINGS).freshness_policy
    assert policy.fail_window.to_timedelta() == datetime.timedelta(hours=36)
    assert policy.warn_window.to_timedelta() == datetime.timedelta(hours=25)
    assert graph.get(dg.AssetKey("raw_documents")).freshness_policy is None
    # The stale asset and its same-group ancestors carry the remediation condition.
    for key in (EMBEDDINGS, dg.AssetKey("raw_documents")):
        assert graph.get(key).automation_condition.get_label() == "freshness_remediation"
    # The remediation sensor evaluates exactly the assets that carry the condition.
    sensor = code_location.get_repository_def().get_sensor_def("freshness_remediation_sensor")
    remediated = {
        node.key
        for node in graph.asset_nodes
        if node.automation_condition is not None
        and "freshness_remediation" in str(node.automation_condition.get_label())
    }
    assert sensor.asset_selection.resolve(graph) == remediated
    assert {EMBEDDINGS, dg.AssetKey("raw_documents")} <= remediated


def test_an_asset_object_listed_twice_is_named_instead_of_a_duplicate_key_error():
    from genai_assets.defs.automation.policies import with_freshness_policies

    @dg.asset(name="document_embeddings", group_name="rag")
    def document_embeddings_test_double() -> dict:
        """Test double of the real asset, listed twice as a module importing it would."""
        return {}

    with pytest.raises(dg.DagsterInvalidDefinitionError, match="document_embeddings are imported"):
        with_freshness_policies(dg.Definitions(assets=[document_embeddings_test_double] * 2))


def test_stale_index_is_announced_and_rebuilt(instance, code_location, http_server, monkeypatch):
    monkeypatch.setenv("GENAI_ASSETS_ALERT_WEBHOOK_URL", http_server.url + "/hooks/genai")
    monkeypatch.setenv("GENAI_ASSETS_UI_BASE_URL", "http://dagster.corvid.test")
    http_server.answer((200, {}, "ok"))
    # A real materialization event of the index, now.
    instance.report_runless_asset_event(dg.AssetMaterialization(EMBEDDINGS))
    now = datetime.datetime.now(datetime.UTC)

    evaluate_freshness(instance)
    assert freshness_state(instance) == "PASS"
    cursor = alert_tick(instance, code_location, None)
    assert http_server.received == []  # fresh: nothing to say
    fresh = dg.evaluate_automation_conditions(defs=code_location, instance=instance)
    assert fresh.total_requested == 0

    # 37 hours later (past the 36 h fail window) without a new materialization.
    later = now + datetime.timedelta(hours=37)
    with freeze_time(later):
        evaluate_freshness(instance)
    assert freshness_state(instance) == "FAIL"

    # The reaction: the index and its input are requested, once.
    stale = dg.evaluate_automation_conditions(
        defs=code_location, instance=instance, evaluation_time=later
    )
    requested = {result.key.to_user_string() for result in stale.results if result.true_subset.size}
    assert requested == {"raw_documents", "document_embeddings"}
    again = dg.evaluate_automation_conditions(
        defs=code_location,
        instance=instance,
        evaluation_time=later + datetime.timedelta(minutes=1),
        cursor=stale.cursor,
    )
    assert again.total_requested == 0

    # ... and a person is told, once.
    cursor = alert_tick(instance, code_location, cursor)
    assert len(http_server.received) == 1
    payload = http_server.received[0].json()["dagster"]
    assert http_server.received[0].path == "/hooks/genai"
    assert payload["assets"] == ["document_embeddings"]
    assert payload["fields"]["Freshness"] == "FAIL"
    assert payload["url"] == "http://dagster.corvid.test/assets/document_embeddings"
    alert_tick(instance, code_location, cursor)
    assert len(http_server.received) == 1


@dg.asset(group_name="rag", kinds={"qdrant"})
def keystone_backed_index() -> dict:
    """Fails like an asset whose key manager is down."""
    raise RuntimeError("Keystone key manager unreachable at https://keystone.corvid.test:8443")


def failed_run_context(instance):
    result = dg.materialize([keystone_backed_index], instance=instance, raise_on_error=False)
    assert not result.success
    failure = next(
        event for event in instance.all_logs(result.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    ).dagster_event
    return result, dg.build_run_status_sensor_context(
        sensor_name="run_failure_alert_sensor",
        dagster_event=failure,
        dagster_instance=instance,
        dagster_run=instance.get_run_by_id(result.run_id),
    ).for_run_failure()


def test_run_failure_alert_reaches_the_webhook(instance, http_server, monkeypatch):
    monkeypatch.setenv("GENAI_ASSETS_ALERT_WEBHOOK_URL", http_server.url + "/slack")
    monkeypatch.delenv("GENAI_ASSETS_UI_BASE_URL", raising=False)
    http_server.answer((500, {}, "down"), (200, {}, "ok"))  # the first post fails
    result, context = failed_run_context(instance)

    run_failure_alert_sensor(context)

    assert [r.path for r in http_server.received] == ["/slack", "/slack"]
    body = http_server.received[-1].json()
    payload = body["dagster"]
    assert payload["run_id"] == result.run_id
    assert payload["job_name"] == result.dagster_run.job_name
    assert payload["assets"] == ["keystone_backed_index"]
    assert payload["summary"].startswith(
        "keystone_backed_index: RuntimeError: Keystone key manager unreachable"
    )
    assert payload["url"] == f"http://127.0.0.1:3000/runs/{result.run_id}"
    assert result.run_id in body["text"]


def test_run_failure_without_webhook_logs_only(instance, monkeypatch, capfd):
    monkeypatch.delenv("GENAI_ASSETS_ALERT_WEBHOOK_URL", raising=False)
    result, context = failed_run_context(instance)
    capfd.readouterr()
    run_failure_alert_sensor(context)  # no exception
    logged = capfd.readouterr().err
    assert f"/runs/{result.run_id}" in logged
    assert "Keystone key manager unreachable" in logged
    assert "logged only" in logged


def test_an_unreachable_webhook_is_logged_clearly(instance, monkeypatch, capfd):
    monkeypatch.setenv("GENAI_ASSETS_ALERT_WEBHOOK_URL", "http://127.0.0.1:9/hook")
    _, context = failed_run_context(instance)
    capfd.readouterr()
    run_failure_alert_sensor(context)
    assert "alert NOT delivered to the webhook after 3 attempt(s)" in capfd.readouterr().err
