"""Everything the project reads from its environment, validated where it is read.

Two kinds of setting live here: where local state is kept and which environment
runs (``local`` or ``production``), and the operational settings of the code
location (schedules, freshness windows, step retries, sensors, alerts). Every
function reads the environment when called (never at import), validates the
value and names the variable in its error, so a typo fails the code location's
load with a message that says what to fix.
"""

import os
import re
import zoneinfo
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

from genai_assets.automation.retries import RetrySettings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DATA = Path(__file__).resolve().parent / "data"
SAMPLE_CORPUS_DIR = PACKAGE_DATA / "sample_corpus"

# The operational settings are GENAI_ASSETS_<NAME>; each reader below names its variable.
PREFIX = "GENAI_ASSETS_"
ENVIRONMENT_VARIABLE = "GENAI_ASSETS_ENV"
ENVIRONMENTS = ("local", "production")

DEFAULT_UI_BASE_URL = "http://127.0.0.1:3000"

Number = TypeVar("Number", int, float)


def dagster_home() -> Path:
    """The instance folder: $DAGSTER_HOME, else ``.dagster_home`` in the checkout."""
    configured = os.environ.get("DAGSTER_HOME")
    return Path(configured) if configured else PROJECT_ROOT / ".dagster_home"


def storage_root() -> Path:
    """Root of local artifacts (IO manager outputs, Qdrant local storage, snapshots)."""
    return dagster_home() / "storage"


def environment() -> str:
    """``local`` (the default) or ``production``, from $GENAI_ASSETS_ENV."""
    value = os.environ.get(ENVIRONMENT_VARIABLE, "local").strip().lower() or "local"
    if value not in ENVIRONMENTS:
        raise ValueError(
            f"{ENVIRONMENT_VARIABLE}={value!r} is not one of {', '.join(ENVIRONMENTS)}"
        )
    return value


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str, name: str = "duration") -> timedelta:
    """A duration such as ``90s``, ``45m``, ``36h``, ``8d`` or ``2w``.

    Raises:
        ValueError: naming ``name`` when the text is not a number followed by a unit.
    """
    match = _DURATION.match(text)
    if not match:
        raise ValueError(
            f"{name}={text!r} is not a duration: use a number and a unit s, m, h, d or w (e.g. 36h)"
        )
    return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def _env(name: str) -> str | None:
    value = os.environ.get(PREFIX + name, "").strip()
    return value or None


def _env_number(name: str, default: Number, minimum: Number) -> Number:
    # The default's type is the setting's: an integer setting rejects "2.5".
    raw = _env(name)
    if raw is None:
        return default
    kind = type(default)
    try:
        value = kind(raw)
    except ValueError as error:
        noun = "an integer" if kind is int else "a number"
        raise ValueError(f"{PREFIX}{name}={raw!r} is not {noun}") from error
    if value < minimum:
        raise ValueError(f"{PREFIX}{name}={value} must be at least {minimum}")
    return value


@dataclass(frozen=True)
class ScheduleSettings:
    """When a schedule fires: a cron expression in an IANA timezone."""

    cron: str
    timezone: str


def _schedule(name: str, default_cron: str) -> ScheduleSettings:
    cron = _env(f"{name}_CRON") or default_cron
    if len(cron.split()) != 5:
        raise ValueError(
            f"{PREFIX}{name}_CRON={cron!r} is not a five-field cron expression "
            "(minute hour day-of-month month day-of-week)"
        )
    timezone = _env(f"{name}_TIMEZONE") or _env("SCHEDULE_TIMEZONE") or "UTC"
    try:
        zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(
            f"{PREFIX}{name}_TIMEZONE (or {PREFIX}SCHEDULE_TIMEZONE)={timezone!r} is not an "
            "IANA timezone such as Europe/Berlin"
        ) from error
    return ScheduleSettings(cron=cron, timezone=timezone)


def rag_refresh_schedule() -> ScheduleSettings:
    """Nightly RAG refresh: ``GENAI_ASSETS_RAG_REFRESH_CRON`` (default 02:00 daily)."""
    return _schedule("RAG_REFRESH", "0 2 * * *")


def fine_tuning_schedule() -> ScheduleSettings:
    """Weekly fine-tuning: ``GENAI_ASSETS_FINE_TUNING_CRON`` (default Sunday 03:00)."""
    return _schedule("FINE_TUNING", "0 3 * * 0")


@dataclass(frozen=True)
class FreshnessWindow:
    """How old an asset's latest materialization may be before it warns, then fails."""

    fail: timedelta
    warn: timedelta | None


# Defaults follow the schedules: a nightly index may be a day old (warn) and
# fails when a night was missed; the weekly serving config likewise per week.
DEFAULT_FRESHNESS = {
    "document_embeddings": ("36h", "25h"),
    "rag_quality_metrics": ("36h", "25h"),
    "serving_config": ("8d", "7d"),
}


def freshness_window(asset_name: str) -> FreshnessWindow:
    """The window of ``asset_name``: ``GENAI_ASSETS_FRESHNESS_<ASSET>_FAIL`` / ``_WARN``.

    Warn set to ``off`` disables the warning. Dagster needs windows of at least a
    minute and a warning shorter than the failure.
    """
    default_fail, default_warn = DEFAULT_FRESHNESS.get(asset_name, ("36h", None))
    base = f"FRESHNESS_{asset_name.upper()}"
    fail = parse_duration(_env(f"{base}_FAIL") or default_fail, f"{PREFIX}{base}_FAIL")
    warn_text = _env(f"{base}_WARN") or default_warn
    warn = (
        None
        if warn_text is None or warn_text.lower() == "off"
        else parse_duration(warn_text, f"{PREFIX}{base}_WARN")
    )
    if fail < timedelta(minutes=1):
        raise ValueError(f"{PREFIX}{base}_FAIL must be at least 1m (got {fail})")
    if warn is not None and not timedelta(minutes=1) <= warn < fail:
        raise ValueError(
            f"{PREFIX}{base}_WARN must be at least 1m and shorter than the fail window "
            f"(got warn {warn}, fail {fail})"
        )
    return FreshnessWindow(fail=fail, warn=warn)


def retry_settings() -> RetrySettings:
    """The retries of steps that call external services, from the environment.

    ``GENAI_ASSETS_RETRY_MAX`` retries (4) after the first attempt,
    ``_RETRY_DELAY_S`` (5) the first backoff (doubled each attempt, with
    jitter); a ``Retry-After`` longer than ``_RETRY_MAX_WAIT_S`` (600) fails
    the step instead of holding it.
    """
    return RetrySettings(
        attempts=1 + _env_number("RETRY_MAX", 4, minimum=0),
        backoff_s=_env_number("RETRY_DELAY_S", 5.0, minimum=0.0),
        max_wait_s=_env_number("RETRY_MAX_WAIT_S", 600.0, minimum=1.0),
    )


def automation_running_by_default() -> bool:
    """Whether sensors and schedules start running: ``GENAI_ASSETS_AUTOMATION_DEFAULT_STATUS``.

    ``running`` (the default) or ``stopped``: a staging copy or a UI test turns
    them off so that nothing starts runs by itself; they can still be switched on
    in the UI.
    """
    value = (_env("AUTOMATION_DEFAULT_STATUS") or "running").strip().lower()
    if value not in ("running", "stopped"):
        raise ValueError(
            f"GENAI_ASSETS_AUTOMATION_DEFAULT_STATUS={value!r}: expected 'running' or 'stopped'"
        )
    return value == "running"


def embedding_gpus() -> int:
    """GPUs the document_embeddings step asks for ($GENAI_ASSETS_EMBEDDING_GPUS, default 0).

    0 keeps the step on the run's (CPU) pod; 1 or more gives it ``dagster-k8s/config``
    op tags requesting that many GPUs, for the ``k8s_job_executor``, which runs each
    step in its own pod.
    """
    return _env_number("EMBEDDING_GPUS", 0, minimum=0)


def sensor_interval_s() -> int:
    """Least seconds between two ticks of a file sensor (``GENAI_ASSETS_SENSOR_INTERVAL_S``).

    A burst of files that lands within one interval becomes one run.
    """
    return _env_number("SENSOR_INTERVAL_S", 60, minimum=5)


def alert_webhook_url() -> str | None:
    """``GENAI_ASSETS_ALERT_WEBHOOK_URL``: a Slack-compatible incoming webhook, or None."""
    return _env("ALERT_WEBHOOK_URL")


def ui_base_url() -> str:
    """``GENAI_ASSETS_UI_BASE_URL``: where the Dagster UI is reachable, for links in alerts."""
    return (_env("UI_BASE_URL") or DEFAULT_UI_BASE_URL).rstrip("/")


TRAINING_DATA_PATTERNS = ("*.jsonl", "*.json", "*.csv", "*.parquet")


def training_data_dir() -> Path:
    """The folder the training-data sensor watches (``GENAI_ASSETS_TRAINING_DATA_DIR``)."""
    configured = _env("TRAINING_DATA_DIR")
    return Path(configured).expanduser() if configured else PACKAGE_DATA / "training"
