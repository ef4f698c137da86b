"""Alerts to people, and the reaction to stale assets.

* ``run_failure_alert_sensor``: every failed run posts its run id, job, assets,
  error summary and a link to the run to the webhook.
* ``freshness_alert_sensor``: an asset that fails (or warns about) its freshness
  policy posts once, and again when it recovers.
* ``freshness_remediation_sensor``: evaluates the freshness remediation
  conditions that definitions.py adds (see ``policies``), so a stale index is
  rebuilt without waiting for the next schedule.

The webhook is ``GENAI_ASSETS_ALERT_WEBHOOK_URL`` (Slack-compatible JSON), read
when an alert is sent; without it alerts are logged only. Links point at
``GENAI_ASSETS_UI_BASE_URL`` (default http://127.0.0.1:3000).
"""

import json

import dagster as dg

from genai_assets import settings
from genai_assets.automation import alerts
from genai_assets.defs.automation.policies import REMEDIATION_TAG


def root_error_message(error) -> str:
    """The message of the innermost cause of a serialized error (the user's own exception)."""
    while error.cause is not None:
        error = error.cause
    return error.message.strip()


def run_failure_alert(context: dg.RunFailureSensorContext) -> alerts.Alert:
    """The alert for a failed run: its assets, failed steps and first error."""
    run = context.dagster_run
    failures = context.get_step_failure_events()
    errors = []
    for event in failures:
        data = event.step_failure_data
        message = root_error_message(data.error) if data and data.error else event.message
        errors.append(f"{event.step_key}: {message}")
    summary = alerts.summarize_error("\n".join(errors) if errors else context.failure_event.message)
    assets = sorted(key.to_user_string() for key in run.asset_selection or [])
    if not assets:
        assets = sorted({event.step_key for event in failures if event.step_key})
    return alerts.Alert(
        title=f"Run failed: {run.job_name}",
        summary=summary,
        assets=assets,
        run_id=run.run_id,
        job_name=run.job_name,
        url=alerts.run_url(settings.ui_base_url(), run.run_id),
        fields={"Failed steps": str(len(failures))},
    )


@dg.run_failure_sensor(
    name="run_failure_alert_sensor",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Posts every failed run (run id, job, assets, error, link) to the webhook in "
    "GENAI_ASSETS_ALERT_WEBHOOK_URL; logs only when none is configured.",
)
def run_failure_alert_sensor(context: dg.RunFailureSensorContext) -> None:
    """Send the alert of one failed run."""
    alerts.send(run_failure_alert(context), settings.alert_webhook_url(), context.log)


def freshness_alert(notice: alerts.FreshnessNotice, base_url: str) -> alerts.Alert:
    """The alert for a freshness notice."""
    path = notice.asset.split("/")
    if notice.recovered:
        title, severity = f"Fresh again: {notice.asset}", "info"
        summary = f"{notice.asset} passes its freshness policy again."
    else:
        title = f"Stale asset: {notice.asset}"
        severity = "error" if notice.state == "FAIL" else "warning"
        summary = (
            f"{notice.asset} is {'past its fail window' if notice.state == 'FAIL' else 'late'} "
            f"(freshness {notice.state}); a refresh is requested automatically."
        )
    return alerts.Alert(
        title=title,
        summary=summary,
        assets=[notice.asset],
        url=alerts.asset_url(base_url, path),
        severity=severity,
        fields={"Freshness": notice.state, "Previous": notice.previous_state or "-"},
    )


@dg.sensor(
    name="freshness_alert_sensor",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Posts to the alert webhook when an asset fails or warns about its freshness "
    "policy, and when it recovers.",
)
def freshness_alert_sensor(context: dg.SensorEvaluationContext):
    """Compare the freshness states the daemon recorded with those already announced."""
    if context.repository_def is None:
        return dg.SkipReason("no code location loaded")
    keys = [
        node.key
        for node in context.repository_def.asset_graph.asset_nodes
        if node.freshness_policy is not None
    ]
    records = context.instance.get_freshness_state_records(keys)
    states = {
        key.to_user_string(): (record.freshness_state.value, record.updated_at.timestamp())
        for key, record in records.items()
    }
    notified = json.loads(context.cursor) if context.cursor else {}
    notices, notified = alerts.freshness_notices(notified, states)
    base_url, webhook = settings.ui_base_url(), settings.alert_webhook_url()
    for notice in notices:
        alerts.send(freshness_alert(notice, base_url), webhook, context.log)
    context.update_cursor(json.dumps(notified, sort_keys=True))
    if not notices:
        return dg.SkipReason(f"no freshness change among {len(keys)} assets with a policy")
    return None


freshness_remediation_sensor = dg.AutomationConditionSensorDefinition(
    name="freshness_remediation_sensor",
    target=dg.AssetSelection.tag(REMEDIATION_TAG, "true"),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
    run_tags={"genai_assets/trigger": "freshness_remediation"},
    description="Re-materializes an asset that fails its freshness policy, together with its "
    "ancestors in the same group, once per failure.",
)
