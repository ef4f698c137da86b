"""Materialize every asset of a Definitions, in dependency order, one run per wave.

A run holds assets that share a partitions definition, so partitioned and
unpartitioned assets (and different partitionings) run separately; every value
crosses runs through the IO manager, as it does in production where each run
is its own pod. Partition keys: every key of a static partitions definition,
the last key of a time-window one, and for dynamic partitions the keys already
registered in the instance plus those passed in ``dynamic_partition_keys``.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import dagster as dg


@dataclass
class WholeGraphResult:
    """What the runs did."""

    runs: list[dg.ExecuteInProcessResult] = field(default_factory=list)
    materialized: set[dg.AssetKey] = field(default_factory=set)

    def materializations(self) -> list[dg.AssetMaterialization]:
        """Every materialization of every run."""
        return [
            event.event_specific_data.materialization  # type: ignore[union-attr]
            for run in self.runs
            for event in run.all_events
            if event.event_type_value == "ASSET_MATERIALIZATION"
        ]


def _partition_keys(
    partitions_def: dg.PartitionsDefinition,
    instance: dg.DagsterInstance,
    dynamic_partition_keys: Mapping[str, Sequence[str]],
) -> list[str]:
    if isinstance(partitions_def, dg.DynamicPartitionsDefinition):
        name = partitions_def.name
        extra = [k for k in dynamic_partition_keys.get(name, []) if k]
        if extra:
            instance.add_dynamic_partitions(name, list(extra))
        keys = list(instance.get_dynamic_partitions(name))
        if not keys:
            raise LookupError(
                f"dynamic partitions {name!r} have no keys: pass some in"
                " dynamic_partition_keys (the whole-graph test's DYNAMIC_PARTITION_KEYS)"
            )
        return keys
    if isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
        last = partitions_def.get_last_partition_key()
        if last is None:
            raise LookupError(f"{partitions_def} has no complete partition yet")
        return [last]
    return list(partitions_def.get_partition_keys(dynamic_partitions_store=instance))


def materialize_whole_graph(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    dynamic_partition_keys: Mapping[str, Sequence[str]] | None = None,
) -> WholeGraphResult:
    """Materialize every materializable asset of ``defs`` (its checks run with them)."""
    dynamic_partition_keys = dynamic_partition_keys or {}
    graph = defs.resolve_asset_graph()
    job = defs.resolve_implicit_global_asset_job_def()
    remaining = set(graph.materializable_asset_keys)
    result = WholeGraphResult()
    while remaining:
        ready = {
            key
            for key in remaining
            if not (graph.get(key).parent_keys & remaining)
            and graph.get(key).execution_set_asset_keys <= remaining | result.materialized
        }
        if not ready:
            raise RuntimeError(f"no asset is ready to run among {sorted(remaining)}")
        # Assets that must execute together (a multi-asset) go into one wave.
        for key in list(ready):
            ready |= graph.get(key).execution_set_asset_keys & remaining
        groups: list[tuple[dg.PartitionsDefinition | None, set[dg.AssetKey]]] = []
        for key in sorted(ready):
            partitions_def = graph.get(key).partitions_def
            for group_def, keys in groups:
                if group_def == partitions_def:
                    keys.add(key)
                    break
            else:
                groups.append((partitions_def, {key}))
        for partitions_def, keys in groups:
            partition_keys = (
                [None]
                if partitions_def is None
                else _partition_keys(partitions_def, instance, dynamic_partition_keys)
            )
            for partition_key in partition_keys:
                result.runs.append(
                    job.execute_in_process(
                        instance=instance,
                        asset_selection=sorted(keys),
                        partition_key=partition_key,
                    )
                )
        result.materialized |= ready
        remaining -= ready
    return result
