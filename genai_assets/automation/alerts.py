"""Alert messages for people: Slack-compatible webhook payloads, posted with retries.

Works with any endpoint that accepts Slack's incoming-webhook JSON (Slack,
Mattermost, Rocket.Chat, Microsoft Teams workflows, a plain HTTP receiver):
``text`` is the plain fallback, ``blocks`` the formatted message.
"""

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote

import httpx

from genai_assets.automation.retries import (
    ExternalCallError,
    RetrySettings,
    TransientExternalError,
    check_response,
    retry_transient,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Alert:
    """One message to a person: what failed or went stale, why, and where to look."""

    title: str
    summary: str
    assets: Sequence[str] = ()
    run_id: str | None = None
    job_name: str | None = None
    url: str | None = None
    severity: str = "error"
    fields: dict[str, str] = field(default_factory=dict)


def run_url(base_url: str, run_id: str) -> str:
    """The Dagster UI page of a run."""
    return f"{base_url.rstrip('/')}/runs/{run_id}"


def asset_url(base_url: str, asset_path: Sequence[str]) -> str:
    """The Dagster UI page of an asset, from its key path (``["a", "b"]`` is ``a/b``)."""
    return f"{base_url.rstrip('/')}/assets/{'/'.join(quote(part) for part in asset_path)}"


def summarize_error(message: str | None, limit: int = 600) -> str:
    """The first lines of an error message, at most ``limit`` characters."""
    text = (message or "no error message").strip()
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def slack_payload(alert: Alert) -> dict:
    """The Slack incoming-webhook JSON of ``alert``: ``text`` fallback plus ``blocks``."""
    icon = {"error": ":red_circle:", "warning": ":warning:"}.get(alert.severity, ":information:")
    details: dict[str, str] = {}
    if alert.job_name:
        details["Job"] = alert.job_name
    if alert.run_id:
        details["Run"] = alert.run_id
    if alert.assets:
        details["Assets"] = ", ".join(alert.assets)
    details.update(alert.fields)
    link = f"\n<{alert.url}|Open in Dagster>" if alert.url else ""
    fallback_bits = [f"{alert.title}: {alert.summary}"]
    fallback_bits += [f"{key}: {value}" for key, value in details.items()]
    if alert.url:
        fallback_bits.append(alert.url)
    blocks: list[dict] = [
        {"type": "header", "text": {"type": "plain_text", "text": alert.title[:150]}},
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": f"{icon} {alert.summary}{link}"},
        },
    ]
    if details:
        blocks.append(
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": f"*{key}*\n{value}"}
                    for key, value in list(details.items())[:10]
                ],
            }
        )
    return {
        "text": "\n".join(fallback_bits),
        "blocks": blocks,
        # Plain copies for receivers that are not Slack (and for tests and log search).
        "dagster": {
            "title": alert.title,
            "summary": alert.summary,
            "severity": alert.severity,
            "run_id": alert.run_id,
            "job_name": alert.job_name,
            "assets": list(alert.assets),
            "url": alert.url,
            **({"fields": alert.fields} if alert.fields else {}),
        },
    }


WEBHOOK = "alert webhook"  # the service name in delivery errors


@dataclass(frozen=True)
class Delivery:
    """What happened to one webhook post."""

    delivered: bool
    attempts: int
    status_code: int | None = None
    error: str | None = None


def post_webhook(
    url: str,
    payload: dict,
    attempts: int = 3,
    backoff_s: float = 1.0,
    timeout_s: float = 10.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Delivery:
    """Post ``payload`` as JSON to ``url``; retry connection errors, 429 and 5xx.

    A ``Retry-After`` sets the wait (up to 30 s), else the backoff doubles from
    ``backoff_s``. Never raises: an alert that cannot be delivered must not fail
    the sensor that sends it (the caller logs the returned Delivery). Other 4xx
    answers (a wrong or revoked webhook) are not retried.
    """
    tried = 0
    status: int | None = None

    def post() -> httpx.Response:
        nonlocal tried, status
        tried += 1
        status = None
        try:
            response = httpx.post(url, json=payload, timeout=timeout_s)
        except httpx.HTTPError as error:
            raise TransientExternalError(WEBHOOK, f"{type(error).__name__}: {error}") from error
        status = response.status_code
        return check_response(WEBHOOK, response)

    try:
        retry_transient(post, RetrySettings(attempts, backoff_s), sleep)
    except ExternalCallError as error:
        return Delivery(False, tried, status, str(error))
    return Delivery(True, tried, status)


def send(alert: Alert, webhook_url: str | None, log: logging.Logger | None = None) -> Delivery:
    """Log ``alert`` and post it to ``webhook_url`` when one is configured.

    No webhook configured is not an error: the alert is logged only.
    """
    log = log or logger
    log.warning(f"ALERT {alert.title}: {alert.summary} ({alert.url or 'no link'})")
    if not webhook_url:
        log.info("no alert webhook configured (GENAI_ASSETS_ALERT_WEBHOOK_URL): logged only")
        return Delivery(False, 0, error="no webhook configured")
    delivery = post_webhook(webhook_url, slack_payload(alert))
    if delivery.delivered:
        log.info(f"alert delivered to the webhook in {delivery.attempts} attempt(s)")
    else:
        log.error(
            f"alert NOT delivered to the webhook after {delivery.attempts} attempt(s): "
            f"{delivery.error}"
        )
    return delivery


ALERTING_STATES = ("FAIL", "WARN")


@dataclass(frozen=True)
class FreshnessNotice:
    """A freshness state to tell a person about: newly failing, warning, or recovered."""

    asset: str
    state: str
    previous_state: str | None
    changed_at: float

    @property
    def recovered(self) -> bool:
        """Whether this notice says that a stale asset is fresh again."""
        return self.state == "PASS"


def freshness_notices(
    notified: dict[str, str], states: dict[str, tuple[str, float]]
) -> tuple[list[FreshnessNotice], dict[str, str]]:
    """Which freshness states to announce, and the updated record of what was announced.

    ``notified`` maps asset -> ``"STATE@timestamp"`` of the last state seen;
    ``states`` maps asset -> (state, time it was entered). FAIL and WARN are
    announced once per time they are entered; PASS only after an announced
    FAIL or WARN (a recovery). The first sight of an asset that is fresh says nothing.
    """
    notices = []
    updated = dict(notified)
    for asset, (state, changed_at) in sorted(states.items()):
        marker = f"{state}@{changed_at:.3f}"
        previous = notified.get(asset)
        if previous == marker:
            continue
        previous_state = previous.split("@", 1)[0] if previous else None
        if state in ALERTING_STATES or (state == "PASS" and previous_state in ALERTING_STATES):
            notices.append(FreshnessNotice(asset, state, previous_state, changed_at))
        updated[asset] = marker
    return notices, updated
