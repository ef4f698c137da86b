"""Nightly RAG refresh and weekly fine-tuning, on by default.

Cron expressions and timezones come from environment variables, read when the
definitions load (see ``genai_assets.automation.settings``):
``GENAI_ASSETS_RAG_REFRESH_CRON``, ``GENAI_ASSETS_FINE_TUNING_CRON`` and
``GENAI_ASSETS_SCHEDULE_TIMEZONE`` (or ``..._RAG_REFRESH_TIMEZONE`` /
``..._FINE_TUNING_TIMEZONE``).
"""

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from genai_assets.automation import settings as ops_settings
from genai_assets.defs.automation.jobs import (
    FINE_TUNING_GROUP,
    RAG_GROUP,
    fine_tuning_job,
    group_asset_keys,
    rag_refresh_job,
)


def group_schedule(
    name: str,
    job: dg.JobDefinition | UnresolvedAssetJobDefinition,
    group: str,
    when: ops_settings.ScheduleSettings,
    description: str,
) -> dg.ScheduleDefinition:
    """A schedule of ``job`` that skips (with the reason) while ``group`` has no assets."""

    @dg.schedule(
        name=name,
        job=job,
        cron_schedule=when.cron,
        execution_timezone=when.timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"{description} ({when.cron}, {when.timezone}).",
    )
    def _schedule(context: dg.ScheduleEvaluationContext):
        if not group_asset_keys(context.repository_def, group):
            return dg.SkipReason(f"group {group!r} has no assets yet")
        return dg.RunRequest(tags={"genai_assets/trigger": name})

    return _schedule


def build_schedules() -> list[dg.ScheduleDefinition]:
    """The schedules, with cron and timezone read from the environment now."""
    return [
        group_schedule(
            "nightly_rag_refresh",
            rag_refresh_job,
            RAG_GROUP,
            ops_settings.rag_refresh_schedule(),
            "Refresh the RAG index every night",
        ),
        group_schedule(
            "weekly_fine_tuning",
            fine_tuning_job,
            FINE_TUNING_GROUP,
            ops_settings.fine_tuning_schedule(),
            "Fine-tune, evaluate and publish the serving config every week",
        ),
    ]


@dg.definitions
def schedules() -> dg.Definitions:
    """The schedules of the code location."""
    return dg.Definitions(schedules=build_schedules())
