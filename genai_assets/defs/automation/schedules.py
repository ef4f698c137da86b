"""Nightly RAG refresh and weekly fine-tuning, on by default.

Cron expressions and timezones come from environment variables, read when the
definitions load (see ``genai_assets.settings``):
``GENAI_ASSETS_RAG_REFRESH_CRON``, ``GENAI_ASSETS_FINE_TUNING_CRON`` and
``GENAI_ASSETS_SCHEDULE_TIMEZONE`` (or ``..._RAG_REFRESH_TIMEZONE`` /
``..._FINE_TUNING_TIMEZONE``).
"""

import dagster as dg

from genai_assets import settings
from genai_assets.defs.automation.domains import (
    DOMAIN_TAG,
    FINE_TUNING_GROUP,
    FINE_TUNING_JOB,
    RAG_GROUP,
    RAG_REFRESH_JOB,
    group_asset_keys,
)


def group_schedule(
    name: str,
    job_name: str,
    group: str,
    when: settings.ScheduleSettings,
    description: str,
    default_status: dg.DefaultScheduleStatus = dg.DefaultScheduleStatus.RUNNING,
) -> dg.ScheduleDefinition:
    """A schedule of ``job_name`` that skips (saying why) while ``group`` has no assets."""

    @dg.schedule(
        name=name,
        job_name=job_name,
        cron_schedule=when.cron,
        execution_timezone=when.timezone,
        default_status=default_status,
        description=f"{description} ({when.cron}, {when.timezone}).",
    )
    def _schedule(context: dg.ScheduleEvaluationContext):
        if not group_asset_keys(context.repository_def, group):
            return dg.SkipReason(f"group {group!r} has no assets yet")
        return dg.RunRequest(tags={"genai_assets/trigger": name, DOMAIN_TAG: group})

    return _schedule


def build_schedules() -> list[dg.ScheduleDefinition]:
    """The schedules, with cron, timezone and default status read from the environment now."""
    status = (
        dg.DefaultScheduleStatus.RUNNING
        if settings.automation_running_by_default()
        else dg.DefaultScheduleStatus.STOPPED
    )
    return [
        group_schedule(
            "nightly_rag_refresh",
            RAG_REFRESH_JOB,
            RAG_GROUP,
            settings.rag_refresh_schedule(),
            "Refresh the RAG index every night",
            status,
        ),
        group_schedule(
            "weekly_fine_tuning",
            FINE_TUNING_JOB,
            FINE_TUNING_GROUP,
            settings.fine_tuning_schedule(),
            "Fine-tune, evaluate and publish the serving config every week",
            status,
        ),
    ]


@dg.definitions
def schedules() -> dg.Definitions:
    """The schedules of the code location."""
    return dg.Definitions(schedules=build_schedules())
