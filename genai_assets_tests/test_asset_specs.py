"""Every asset spec of the code location against a committed snapshot.

An unintended change to an asset's key, deps, group, kinds, owners, tags,
automation condition, freshness, checks, pool, retry policy or op tags fails
here at once. After an intended change, regenerate the snapshot and commit it
with the change (from the checkout root):

    GENAI_ASSETS_UPDATE_SNAPSHOTS=1 .venv/bin/python -m pytest \
        genai_assets_tests/test_asset_specs.py

The snapshot holds the defaults: run it without GENAI_ASSETS_RETRY_*,
GENAI_ASSETS_FRESHNESS_* or GENAI_ASSETS_EMBEDDING_GPUS set.
"""

import json
import os
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from genai_assets.definitions import defs as load_definitions

SNAPSHOT = Path(__file__).parent / "snapshots" / "asset_specs.json"
UPDATE_VARIABLE = "GENAI_ASSETS_UPDATE_SNAPSHOTS"
KIND_TAG_PREFIX = "dagster/kind/"


def _seconds(window: Any) -> float | None:
    return None if window is None else window.to_timedelta().total_seconds()


def _freshness(policy: Any) -> dict | None:
    if policy is None:
        return None
    if hasattr(policy, "fail_window"):
        return {
            "fail_s": _seconds(policy.fail_window),
            "warn_s": _seconds(getattr(policy, "warn_window", None)),
        }
    return {"type": type(policy).__name__}


def _retry(policy: dg.RetryPolicy | None) -> dict | None:
    if policy is None:
        return None
    return {
        "max_retries": policy.max_retries,
        "delay_s": policy.delay,
        "backoff": policy.backoff.value if policy.backoff else None,
        "jitter": policy.jitter.value if policy.jitter else None,
    }


def asset_specs(definitions: dg.Definitions) -> dict[str, dict]:
    """What the snapshot pins of each asset, as plain JSON values."""
    graph = definitions.resolve_asset_graph()
    checks_by_asset: dict[dg.AssetKey, list[dict]] = {}
    for check_key in graph.asset_check_keys:
        checks_by_asset.setdefault(check_key.asset_key, []).append(
            {"name": check_key.name, "blocking": graph.get(check_key).blocking}
        )
    specs = {}
    for node in sorted(graph.asset_nodes, key=lambda node: node.key.to_user_string()):
        op = definitions.resolve_assets_def(node.key).node_def
        condition = node.automation_condition
        specs[node.key.to_user_string()] = {
            "deps": sorted(parent.to_user_string() for parent in node.parent_keys),
            "group": node.group_name,
            "kinds": sorted(node.kinds),
            "owners": list(node.owners),
            "tags": {
                key: value
                for key, value in sorted(node.tags.items())
                if not key.startswith(KIND_TAG_PREFIX)
            },
            "code_version": node.code_version,
            "partitions": type(node.partitions_def).__name__ if node.partitions_def else None,
            "automation_condition": (
                (condition.get_label() or condition.name) if condition is not None else None
            ),
            "freshness": _freshness(node.freshness_policy),
            "checks": sorted(checks_by_asset.get(node.key, []), key=lambda check: check["name"]),
            "pool": op.pool,
            "retry_policy": _retry(op.retry_policy),
            "op_tags": sorted(op.tags),
        }
    return specs


def test_asset_specs_match_the_snapshot():
    actual = asset_specs(load_definitions())
    if os.environ.get(UPDATE_VARIABLE) == "1":
        SNAPSHOT.write_text(json.dumps(actual, indent=2, sort_keys=True) + "\n")
        pytest.skip(f"{SNAPSHOT.name} regenerated ({len(actual)} assets): review and commit it")
    expected = json.loads(SNAPSHOT.read_text())
    assert sorted(actual) == sorted(expected), "assets added or removed"
    changed = {
        key: {
            field: {"snapshot": expected[key].get(field), "now": value}
            for field, value in actual[key].items()
            if expected[key].get(field) != value
        }
        for key in actual
        if actual[key] != expected[key]
    }
    assert not changed, (
        f"asset specs differ from {SNAPSHOT.name} (if intended: {UPDATE_VARIABLE}=1 pytest "
        f"{Path(__file__).name}, then commit the snapshot):\n{json.dumps(changed, indent=2)}"
    )


def test_every_asset_has_owners_and_a_stage():
    specs = asset_specs(load_definitions())
    missing = [
        key for key, spec in specs.items() if not spec["owners"] or "stage" not in spec["tags"]
    ]
    assert not missing, f"assets without owners or a stage tag: {missing}"
