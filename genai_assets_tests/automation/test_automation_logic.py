"""Pure operations logic: settings, change sets and cursors, alert payloads, retry decisions."""

import email.utils
import logging
import time
from datetime import timedelta

import httpx
import pytest

from genai_assets import settings
from genai_assets.automation import alerts, changes, retries

# --- settings -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("45m", timedelta(minutes=45)),
        ("36h", timedelta(hours=36)),
        ("1.5h", timedelta(minutes=90)),
        ("8d", timedelta(days=8)),
        ("2w", timedelta(weeks=2)),
    ],
)
def test_parse_duration(text, expected):
    assert settings.parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "36", "h", "3 days", "-1h", "1y"])
def test_parse_duration_rejects_and_names_the_input(text):
    with pytest.raises(ValueError, match="MY_VAR"):
        settings.parse_duration(text, "MY_VAR")


def test_schedule_settings_defaults(monkeypatch):
    for name in ("RAG_REFRESH_CRON", "RAG_REFRESH_TIMEZONE", "SCHEDULE_TIMEZONE"):
        monkeypatch.delenv(f"GENAI_ASSETS_{name}", raising=False)
    assert settings.rag_refresh_schedule() == settings.ScheduleSettings("0 2 * * *", "UTC")


def test_schedule_settings_from_environment(monkeypatch):
    monkeypatch.setenv("GENAI_ASSETS_FINE_TUNING_CRON", "30 4 * * 6")
    monkeypatch.setenv("GENAI_ASSETS_SCHEDULE_TIMEZONE", "Europe/Berlin")
    assert settings.fine_tuning_schedule() == settings.ScheduleSettings(
        "30 4 * * 6", "Europe/Berlin"
    )


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("GENAI_ASSETS_RAG_REFRESH_CRON", "every night", "five-field cron"),
        ("GENAI_ASSETS_RAG_REFRESH_TIMEZONE", "Mars/Olympus", "IANA timezone"),
    ],
)
def test_schedule_settings_errors_name_the_variable(monkeypatch, variable, value, message):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=message) as raised:
        settings.rag_refresh_schedule()
    assert variable.removesuffix("_CRON").removesuffix("_TIMEZONE") in str(raised.value)


def test_freshness_window_defaults_and_overrides(monkeypatch):
    monkeypatch.delenv("GENAI_ASSETS_FRESHNESS_SERVING_CONFIG_FAIL", raising=False)
    monkeypatch.delenv("GENAI_ASSETS_FRESHNESS_SERVING_CONFIG_WARN", raising=False)
    assert settings.freshness_window("serving_config") == settings.FreshnessWindow(
        timedelta(days=8), timedelta(days=7)
    )
    monkeypatch.setenv("GENAI_ASSETS_FRESHNESS_DOCUMENT_EMBEDDINGS_FAIL", "2h")
    monkeypatch.setenv("GENAI_ASSETS_FRESHNESS_DOCUMENT_EMBEDDINGS_WARN", "off")
    assert settings.freshness_window("document_embeddings") == settings.FreshnessWindow(
        timedelta(hours=2), None
    )


@pytest.mark.parametrize(("fail", "warn"), [("30s", "off"), ("2h", "3h"), ("2h", "30s")])
def test_freshness_window_rejects_what_dagster_cannot_evaluate(monkeypatch, fail, warn):
    monkeypatch.setenv("GENAI_ASSETS_FRESHNESS_RAG_QUALITY_METRICS_FAIL", fail)
    monkeypatch.setenv("GENAI_ASSETS_FRESHNESS_RAG_QUALITY_METRICS_WARN", warn)
    with pytest.raises(ValueError, match="GENAI_ASSETS_FRESHNESS_RAG_QUALITY_METRICS"):
        settings.freshness_window("rag_quality_metrics")


def test_retry_settings_validation(monkeypatch):
    monkeypatch.setenv("GENAI_ASSETS_RETRY_MAX", "two")
    with pytest.raises(ValueError, match="GENAI_ASSETS_RETRY_MAX"):
        settings.retry_settings()
    monkeypatch.setenv("GENAI_ASSETS_RETRY_MAX", "2")
    monkeypatch.setenv("GENAI_ASSETS_RETRY_DELAY_S", "0.5")
    assert settings.retry_settings() == retries.RetrySettings(
        attempts=3, backoff_s=0.5, max_wait_s=600.0
    )


# --- change sets and cursors ------------------------------------------------------------------


def test_diff_reports_added_changed_removed_sorted():
    previous = {"a.md": "1:t1", "b.md": "2:t1", "gone.md": "3:t1"}
    current = {"b.md": "2:t2", "a.md": "1:t1", "z.md": "9:t2", "c.md": "4:t2"}
    change = changes.diff(previous, current)
    assert change.added == ("c.md", "z.md")
    assert change.changed == ("b.md",)
    assert change.removed == ("gone.md",)
    assert change.count == 4
    assert "2 added (c.md, z.md)" in change.summary()


def test_no_change_is_falsy():
    assert not changes.diff({"a": "1"}, {"a": "1"})


def test_run_key_depends_on_the_change_not_on_order_or_time():
    one = changes.diff({}, {"a": "1", "b": "2"})
    same = changes.diff({}, {"b": "2", "a": "1"})
    assert one.run_key("documents") == same.run_key("documents")
    # The same file changed again is a new change: a new run key.
    first_edit = changes.diff({"a": "1"}, {"a": "2"})
    second_edit = changes.diff({"a": "2"}, {"a": "3"})
    assert first_edit.run_key("documents") != second_edit.run_key("documents")
    assert first_edit.run_key("documents").startswith("documents:")


@pytest.mark.parametrize(
    ("size", "modified", "etag", "expected"),
    [
        (10, "2026-01-01T00:00:00+00:00", None, "10:2026-01-01T00:00:00+00:00"),
        (10, 123, '"abc"', "etag:abc"),
        (None, None, None, "unknown"),
    ],
)
def test_fingerprint(size, modified, etag, expected):
    assert changes.fingerprint(size, modified, etag) == expected


def test_cursor_round_trip_and_errors():
    files = {"s3://b/docs/x.md": "5:t", "/data/a.md": "1:t"}
    assert changes.decode_cursor(changes.encode_cursor(files)) == files
    assert changes.decode_cursor(None) == {}
    for bad in ("not json", '{"version": 99, "files": {}}', '{"version": 1, "files": [1]}'):
        with pytest.raises(ValueError, match="reset the cursor"):
            changes.decode_cursor(bad)


# --- alerts ---------------------------------------------------------------------------------


def test_slack_payload_carries_every_field():
    alert = alerts.Alert(
        title="Run failed: rag_refresh_job",
        summary="document_embeddings: Keystone unreachable",
        assets=["document_embeddings"],
        run_id="abc-123",
        job_name="rag_refresh_job",
        url=alerts.run_url("http://ui.example:3000/", "abc-123"),
    )
    payload = alerts.slack_payload(alert)
    assert payload["dagster"]["url"] == "http://ui.example:3000/runs/abc-123"
    assert "abc-123" in payload["text"] and "document_embeddings" in payload["text"]
    assert payload["blocks"][0]["type"] == "header"
    assert "<http://ui.example:3000/runs/abc-123|Open in Dagster>" in str(payload["blocks"])


def test_summarize_error_truncates():
    assert alerts.summarize_error("x" * 1000, limit=50).endswith("...")
    assert len(alerts.summarize_error("x" * 1000, limit=50)) == 50
    assert alerts.summarize_error(None) == "no error message"


def test_asset_url_quotes_path():
    assert alerts.asset_url("http://h:3000", ["rag", "my asset"]) == (
        "http://h:3000/assets/rag/my%20asset"
    )


def test_freshness_notices_announce_each_state_once_and_recoveries():
    notices, seen = alerts.freshness_notices({}, {"emb": ("PASS", 1.0)})
    assert notices == []
    notices, seen = alerts.freshness_notices(seen, {"emb": ("FAIL", 2.0)})
    assert [(n.asset, n.state, n.previous_state) for n in notices] == [("emb", "FAIL", "PASS")]
    notices, seen = alerts.freshness_notices(seen, {"emb": ("FAIL", 2.0)})
    assert notices == []
    notices, seen = alerts.freshness_notices(seen, {"emb": ("PASS", 3.0)})
    assert [n.recovered for n in notices] == [True]


def test_post_webhook_retries_5xx_then_delivers(http_server):
    http_server.answer((503, {}, "busy"), (200, {}, "ok"))
    waits = []
    delivery = alerts.post_webhook(http_server.url + "/hook", {"text": "hi"}, sleep=waits.append)
    assert delivery == alerts.Delivery(True, 2, 200)
    assert waits == [1.0]
    assert [r.json() for r in http_server.received] == [{"text": "hi"}] * 2


def test_post_webhook_waits_as_long_as_retry_after_says(http_server):
    http_server.answer((429, {"Retry-After": "2"}, "slow down"), (200, {}, "ok"))
    waits = []
    delivery = alerts.post_webhook(http_server.url, {"text": "hi"}, sleep=waits.append)
    assert delivery == alerts.Delivery(True, 2, 200)
    assert waits == [2.0]


def test_post_webhook_does_not_retry_a_wrong_webhook(http_server):
    http_server.answer((404, {}, "no such hook"))
    delivery = alerts.post_webhook(http_server.url, {"text": "hi"}, sleep=lambda s: None)
    assert not delivery.delivered and delivery.attempts == 1
    assert "HTTP 404" in delivery.error


def test_post_webhook_unreachable_is_reported_not_raised():
    delivery = alerts.post_webhook(
        "http://127.0.0.1:9/hook", {"text": "hi"}, attempts=2, timeout_s=1, sleep=lambda s: None
    )
    assert not delivery.delivered and delivery.attempts == 2
    assert "Connect" in delivery.error


def test_send_without_webhook_logs_only(caplog):
    caplog.set_level(logging.INFO)
    delivery = alerts.send(alerts.Alert("t", "s"), None)
    assert not delivery.delivered and delivery.attempts == 0
    assert "logged only" in caplog.text


# --- retry classification -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "headers", "kind", "wait"),
    [
        (200, {}, None, None),
        (429, {"Retry-After": "7"}, retries.TransientExternalError, 7.0),
        (503, {"retry-after": "1.5"}, retries.TransientExternalError, 1.5),
        (500, {}, retries.TransientExternalError, None),
        (502, {}, retries.TransientExternalError, None),
        (408, {}, retries.TransientExternalError, None),
        (401, {}, retries.PermanentExternalError, None),
        (403, {}, retries.PermanentExternalError, None),
        (400, {}, retries.PermanentExternalError, None),
        (404, {}, retries.PermanentExternalError, None),
        (422, {}, retries.PermanentExternalError, None),
    ],
)
def test_error_for_status(status, headers, kind, wait):
    error = retries.error_for_status("svc", status, headers)
    if kind is None:
        assert error is None
        return
    assert type(error) is kind
    assert error.status == status
    assert getattr(error, "retry_after_s", None) == wait


def test_retry_after_http_date():
    now = time.time()
    header = email.utils.formatdate(now + 30, usegmt=True)
    assert 28 <= retries.parse_retry_after(header, now=now) <= 31
    assert retries.parse_retry_after("garbage") is None
    assert retries.parse_retry_after("-5") == 0.0


def test_classify_exceptions_of_httpx_and_openai():
    import openai

    request = httpx.Request("POST", "http://llm/v1/chat/completions")
    assert isinstance(
        retries.classify_exception("llm", httpx.ConnectError("refused", request=request)),
        retries.TransientExternalError,
    )
    unauthorized = openai.AuthenticationError(
        "bad key", response=httpx.Response(401, request=request), body=None
    )
    classified = retries.classify_exception("llm", unauthorized)
    assert isinstance(classified, retries.PermanentExternalError)
    limited = openai.RateLimitError(
        "slow down",
        response=httpx.Response(429, headers={"retry-after": "3"}, request=request),
        body=None,
    )
    classified = retries.classify_exception("llm", limited)
    assert isinstance(classified, retries.TransientExternalError)
    assert classified.retry_after_s == 3.0
    assert retries.classify_exception("llm", KeyError("x")) is None


def test_retry_transient_waits_retry_after_or_backoff_and_reraises_the_last_error():
    failures = [
        retries.TransientExternalError("svc", "busy", 429, retry_after_s=90.0),
        retries.TransientExternalError("svc", "reset"),
        retries.TransientExternalError("svc", "still down", 503),
    ]
    waits: list[float] = []

    def call() -> str:
        raise failures.pop(0)

    retry = retries.RetrySettings(attempts=3, backoff_s=0.5, max_wait_s=30.0)
    with pytest.raises(retries.TransientExternalError, match="still down"):
        retries.retry_transient(call, retry, sleep=waits.append)
    # Retry-After capped at max_wait_s, then the second backoff step.
    assert waits == [30.0, 1.0]


def test_retry_transient_never_retries_a_permanent_error():
    calls = []

    def call() -> None:
        calls.append(1)
        raise retries.PermanentExternalError("svc", "HTTP 401", 401)

    with pytest.raises(retries.PermanentExternalError):
        retries.retry_transient(call, retries.RetrySettings(attempts=5), sleep=lambda s: None)
    assert len(calls) == 1
    with pytest.raises(ValueError, match="attempts must be at least 1"):
        retries.RetrySettings(attempts=0)


def test_a_sensor_without_cursor_starts_from_what_the_last_run_read():
    files = [("a.md", "1:t1", 100.0), ("b.md", "2:t2", 250.0), ("url", "unknown", None)]
    assert changes.baseline(files, None) == {}  # never materialized: every file is new
    start = changes.baseline(files, 200.0)
    assert start == {"a.md": "1:t1", "url": "unknown"}
    change = changes.diff(start, changes.snapshot((uri, fp) for uri, fp, _ in files))
    assert change.added == ("b.md",) and not change.changed and not change.removed
    assert not changes.diff(changes.baseline(files, 300.0), dict(start, **{"b.md": "2:t2"}))
