"""Every materialization's numbers, pushed to a Prometheus Pushgateway by one sensor.

``metrics_push_sensor`` reads the materializations recorded since its cursor
(per asset, in order), maps their metadata to gauges with
``genai_assets.tracking.prometheus_metrics`` and pushes one group per asset and
partition, labelled with the code location. No asset has metrics code of its
own: a number an asset reports under a known metadata key is pushed.

A push that fails fails the tick without moving the cursor, so the next tick
pushes the same materializations again (a push replaces its group, so a
repeat is harmless); nothing is dropped while the gateway is down.
"""

import json

import dagster as dg

from genai_assets.rag.evaluation.collection import ALL_METRICS
from genai_assets.resources.prometheus import PushgatewayResource
from genai_assets.tracking import prometheus_metrics

# Materializations read per asset and tick; a backlog is worked off over several ticks.
BATCH = 200
DEFAULT_CODE_LOCATION = "genai_assets"


def _step_duration_s(instance: dg.DagsterInstance, entry: dg.EventLogEntry) -> float | None:
    # The step's start and end as the run timeline shows them; end is unset while the
    # step is still running, when its materialization time stands in for it.
    if not entry.step_key:
        return None
    stats = instance.get_run_step_stats(entry.run_id, step_keys=[entry.step_key])
    if not stats or stats[0].start_time is None:
        return None
    return max(0.0, (stats[0].end_time or entry.timestamp) - stats[0].start_time)


def materialization_samples(
    instance: dg.DagsterInstance, record: dg.EventLogRecord
) -> list[prometheus_metrics.Sample]:
    """The gauges of one materialization record."""
    entry = record.event_log_entry
    materialization = record.asset_materialization
    metadata = {key: value.value for key, value in (materialization.metadata or {}).items()}
    return prometheus_metrics.samples_from_metadata(
        metadata,
        score_names=ALL_METRICS,
        step_duration_s=_step_duration_s(instance, entry),
        timestamp_s=entry.timestamp,
    )


@dg.sensor(
    name="metrics_push_sensor",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Pushes the numbers of every new materialization (chunks, failed documents, "
    "token coverage, batch items, tokens, cost, latency, scores, step duration) to the "
    "Prometheus Pushgateway in PROMETHEUS_PUSHGATEWAY_URL; skips when none is configured.",
)
def metrics_push_sensor(context: dg.SensorEvaluationContext, prometheus: PushgatewayResource):
    """Push one group per asset (and partition) that materialized since the cursor."""
    if not prometheus.is_configured:
        return dg.SkipReason("no Pushgateway configured (PROMETHEUS_PUSHGATEWAY_URL is not set)")
    if context.repository_def is None:
        return dg.SkipReason("no code location loaded")
    origin = context.code_location_origin
    location = origin.location_name if origin is not None else DEFAULT_CODE_LOCATION
    cursors = json.loads(context.cursor) if context.cursor else {}
    keys = sorted(node.key for node in context.repository_def.asset_graph.asset_nodes)
    pushed: list[str] = []
    for key in keys:
        name = key.to_user_string()
        result = context.instance.fetch_materializations(
            key, limit=BATCH, cursor=cursors.get(name), ascending=True
        )
        latest: dict[str | None, dg.EventLogRecord] = {}
        for record in result.records:  # ascending: the newest of each partition wins
            latest[record.partition_key] = record
        for partition, record in latest.items():
            group = prometheus_metrics.grouping_key(location, name, partition)
            prometheus.push(group, materialization_samples(context.instance, record))
            pushed.append(name if partition is None else f"{name}[{partition}]")
        if result.records:
            cursors[name] = result.cursor
    context.update_cursor(json.dumps(cursors, sort_keys=True))
    if not pushed:
        return dg.SkipReason(f"no new materialization among {len(keys)} assets")
    context.log.info(f"pushed the metrics of {', '.join(pushed)} to {prometheus.url}")
    return None
