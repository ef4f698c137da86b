"""What the Dagster Helm chart does with helm/values.yaml, reproduced offline for the tests.

`helm template` cannot run here (the chart repository is out of reach), so the
tests check the values the way the chart would:

* **Schema.** ``helm/chart-values.schema.json`` is the chart's own
  ``values.schema.json``, unchanged: ``helm/dagster/values.schema.json`` of the
  dagster-io/dagster repository at commit bdb8547fab49, the newest copy that
  could be read when it was added (no network here). It predates the
  chart's top-level ``concurrency`` section (added later; rendered by the
  1.13 chart), which :data:`CONCURRENCY_DEFINITIONS` encodes from the chart's
  pydantic model ``helm/dagster/schema/schema/charts/dagster/subschema/concurrency.py``.
  Its Kubernetes ``$ref``s point at kubernetesjsonschema.dev; they resolve to the
  strict Kubernetes definitions that kubernetes-validate ships.
* **Defaults.** Helm validates the values merged over the chart's own
  values.yaml: maps merge, lists replace. So a key the schema requires may be
  missing from a map (the chart's default supplies it) but not from a list item.
* **Rendering.** :func:`instance_config` writes the dagster.yaml sections the
  chart renders from ``concurrency``, ``dagsterDaemon.runMonitoring`` and
  ``computeLogManager``; :func:`code_location_container_context` is the
  container context the chart hands to the K8sRunLauncher for runs of the code
  location (the chart's ``dagsterUserDeployments.k8sContainerContext`` helper).
"""

import copy
import functools
import json
import re
from collections.abc import Iterator
from typing import Any

import jsonschema
import yaml
from referencing import Registry, Resource

from genai_assets import settings
from genai_assets_tests.k8s_validation import DEFINITIONS_URI, K8S_VERSION

HELM_DIR = settings.PROJECT_ROOT / "helm"
VALUES_PATH = HELM_DIR / "values.yaml"
SCHEMA_PATH = HELM_DIR / "chart-values.schema.json"
# Where the chart's schema points its Kubernetes $refs.
CHART_K8S_URI = "https://kubernetesjsonschema.dev/v1.18.0/_definitions.json"

# The chart's `concurrency` section (dagster 1.13), as its pydantic model defines it:
# every level forbids unknown keys.
CONCURRENCY_DEFINITIONS: dict[str, Any] = {
    "ConcurrencyPools": {
        "type": "object",
        "properties": {
            "defaultLimit": {"type": ["integer", "null"]},
            "granularity": {"type": ["string", "null"]},  # "run" or "op"
            "opGranularityRunBuffer": {"type": ["integer", "null"]},
        },
        "additionalProperties": False,
    },
    "ConcurrencyTagLimit": {
        "type": "object",
        "properties": {
            "key": {"type": "string"},
            "value": {"type": ["string", "object", "null"]},
            "limit": {"type": "integer"},
        },
        "required": ["key", "limit"],
        "additionalProperties": False,
    },
    "ConcurrencyRuns": {
        "type": "object",
        "properties": {
            "maxConcurrentRuns": {"type": ["integer", "null"]},
            "tagConcurrencyLimits": {
                "type": "array",
                "items": {"$ref": "#/definitions/ConcurrencyTagLimit"},
            },
        },
        "additionalProperties": False,
    },
    "Concurrency": {
        "type": "object",
        "properties": {
            "enabled": {"type": "boolean"},
            "pools": {"$ref": "#/definitions/ConcurrencyPools"},
            "runs": {"$ref": "#/definitions/ConcurrencyRuns"},
        },
        "additionalProperties": False,
    },
}


# The runMonitoring keys the chart's configmap-instance.yaml writes into dagster.yaml
# (the schema leaves runMonitoring free-form: any other key is silently dropped).
RUN_MONITORING_KEYS = (
    "enabled",
    "startTimeoutSeconds",
    "cancelTimeoutSeconds",
    "maxResumeRunAttempts",
    "pollIntervalSeconds",
    "freeSlotsAfterRunEndSeconds",
)


def load_values() -> dict[str, Any]:
    """helm/values.yaml as Helm reads it."""
    return yaml.safe_load(VALUES_PATH.read_text())


def user_deployment(values: dict[str, Any]) -> dict[str, Any]:
    """The one code location of the values."""
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    return deployment


def deployment_env(values: dict[str, Any]) -> dict[str, str]:
    """The code location's plain environment variables (name: value)."""
    return {item["name"]: item["value"] for item in user_deployment(values)["env"]}


@functools.cache
def chart_schema() -> dict[str, Any]:
    """The chart's values schema, with the 1.13 ``concurrency`` section added."""
    schema = json.loads(SCHEMA_PATH.read_text())
    schema["properties"]["concurrency"] = {"$ref": "#/definitions/Concurrency"}
    schema["definitions"].update(copy.deepcopy(CONCURRENCY_DEFINITIONS))
    return schema


@functools.cache
def _registry() -> Registry:
    from importlib import resources

    path = resources.files("kubernetes_validate").joinpath(
        f"kubernetes-json-schema/v{K8S_VERSION}-local-strict/_definitions.json"
    )
    contents = json.loads(path.read_text())
    # The chart refers to "#/definitions/<type>"; kubernetes-validate names them $defs.
    contents["definitions"] = contents["$defs"]
    resource = Resource.from_contents(contents)
    return Registry().with_resources([(DEFINITIONS_URI, resource), (CHART_K8S_URI, resource)])


def validator() -> jsonschema.Draft7Validator:
    """A validator of the chart's schema (draft 7, as pydantic v1 generated it)."""
    schema = chart_schema()
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema, registry=_registry())


def _in_list_item(error: jsonschema.ValidationError) -> bool:
    return any(isinstance(part, int) for part in error.absolute_path)


def schema_errors(values: dict[str, Any]) -> list[str]:
    """Where ``values`` break the chart's schema once merged over the chart's defaults.

    A missing required key inside a map is left out (the chart's values.yaml
    supplies it); inside a list item it is an error, since lists replace.
    """
    errors = []
    for error in validator().iter_errors(values):
        if error.validator == "required" and not _in_list_item(error):
            continue
        path = "/".join(str(part) for part in error.absolute_path) or "<root>"
        errors.append(f"{path}: {error.message}")
    return errors


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    definitions = chart_schema()["definitions"]
    while isinstance(node.get("$ref"), str) and node["$ref"].startswith("#/definitions/"):
        node = definitions[node["$ref"].removeprefix("#/definitions/")]
    return node


def _branches(node: dict[str, Any]) -> list[dict[str, Any]]:
    node = _resolve(node)
    return [node, *(_resolve(branch) for branch in node.get("anyOf", []))]


def unknown_keys(values: Any, node: dict[str, Any] | None = None, path: str = "") -> Iterator[str]:
    """Keys of ``values`` that the chart does not define, where its schema lists keys.

    Several chart sections (postgresql, the user deployments) accept any extra
    key and ignore it, so a typo there passes the schema silently; this walk
    reports it. Objects the chart leaves free-form (runMonitoring,
    postgresqlParams, runK8sConfig's parts) and Kubernetes objects (checked by
    the strict Kubernetes schema instead) are not walked.
    """
    node = chart_schema() if node is None else node
    branches = _branches(node)
    if isinstance(values, dict):
        defined = [branch for branch in branches if branch.get("properties")]
        if not defined:
            return
        for key, value in values.items():
            owner = next((b for b in defined if key in b["properties"]), None)
            if owner is None:
                yield f"{path}{key}"
            else:
                yield from unknown_keys(value, owner["properties"][key], f"{path}{key}/")
    elif isinstance(values, list):
        items = next((b["items"] for b in branches if isinstance(b.get("items"), dict)), None)
        if items is not None:
            for index, value in enumerate(values):
                yield from unknown_keys(value, items, f"{path}{index}/")


def snake_case(name: str) -> str:
    """A chart value name as dagster.yaml spells it (maxConcurrentRuns: max_concurrent_runs)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _snake_keys(mapping: dict[str, Any]) -> dict[str, Any]:
    return {snake_case(key): value for key, value in mapping.items() if value is not None}


def instance_config(values: dict[str, Any]) -> dict[str, Any]:
    """The dagster.yaml sections the chart renders from ``values`` (concurrency, run monitoring).

    The chart writes each set value of these sections under its snake_case name;
    tag limits are copied as they are.

    Raises:
        ValueError: where the chart itself refuses to render (limits set both in
            ``concurrency`` and in the run queue's config), or would drop a
            runMonitoring key it does not render.
    """
    config: dict[str, Any] = {}
    concurrency = values.get("concurrency", {})
    if concurrency.get("enabled"):
        queued = (
            values.get("dagsterDaemon", {})
            .get("runCoordinator", {})
            .get("config", {})
            .get("queuedRunCoordinator")
            or {}
        )
        runs = concurrency.get("runs", {})
        for chart_key in ("maxConcurrentRuns", "tagConcurrencyLimits"):
            if runs.get(chart_key) and queued.get(chart_key):
                raise ValueError(
                    f"concurrency.runs.{chart_key} and the queuedRunCoordinator's {chart_key}"
                    " are both set: the chart refuses to render both"
                )
        config["concurrency"] = {
            "pools": _snake_keys(concurrency.get("pools", {})),
            "runs": _snake_keys(runs),
        }
    daemon = values.get("dagsterDaemon", {})
    monitoring = daemon.get("runMonitoring", {})
    if daemon.get("enabled") and monitoring.get("enabled"):
        ignored = sorted(set(monitoring) - set(RUN_MONITORING_KEYS))
        if ignored:
            raise ValueError(
                f"dagsterDaemon.runMonitoring.{ignored[0]} is not rendered by the chart"
                f" (it renders {', '.join(RUN_MONITORING_KEYS)})"
            )
        config["run_monitoring"] = _snake_keys(monitoring)
    return config


def compute_log_manager_config(values: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """``(type, config)`` of the compute log manager the chart renders."""
    manager = values["computeLogManager"]
    manager_type = manager["type"]
    key = manager_type[0].lower() + manager_type[1:]
    return manager_type, _snake_keys(manager["config"][key])


def code_location_container_context(
    values: dict[str, Any], release: str = "dagster", namespace: str = "dagster"
) -> dict[str, Any]:
    """The container context the chart gives runs of the code location (``{"k8s": ...}``).

    Mirrors the chart's ``dagsterUserDeployments.k8sContainerContext`` helper:
    pull policy, the generated env ConfigMap, envSecrets, volumes and mounts,
    labels, resources, namespace, service account and a list-form ``env``.
    """
    deployment = user_deployment(values)
    k8s: dict[str, Any] = {
        "image_pull_policy": deployment["image"]["pullPolicy"],
        "env_config_maps": [
            f"{release}-dagster-user-deployments-{deployment['name']}-user-env",
            *(ref["name"] for ref in deployment.get("envConfigMaps", []) if "name" in ref),
        ],
        "namespace": namespace,
        "service_account_name": f"{release}-dagster-user-deployments-user-deployments",
    }
    secrets = [ref["name"] for ref in deployment.get("envSecrets", []) if "name" in ref]
    if secrets:
        k8s["env_secrets"] = secrets
    for chart_key, context_key in (
        ("volumeMounts", "volume_mounts"),
        ("volumes", "volumes"),
        ("labels", "labels"),
        ("resources", "resources"),
    ):
        if deployment.get(chart_key):
            k8s[context_key] = deployment[chart_key]
    if isinstance(deployment.get("env"), list):
        k8s["env"] = deployment["env"]
    return {"k8s": k8s}
