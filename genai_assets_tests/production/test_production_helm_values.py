"""helm/values.yaml against the Dagster chart's real schema, Dagster's config and the code.

* every key is one the chart defines and every value type-checks against the
  chart's own values.schema.json (see helm_chart.py for how Helm's merge with
  the chart's defaults is taken into account);
* the instance sections the chart renders (concurrency, run monitoring, compute
  logs) validate against Dagster's own instance and compute log manager config,
  and enforce the same rules as the local dagster.yaml;
* every environment variable the code reads is named in the values;
* the fine-tuning artifact volume is the same claim at the same path in the
  code server, the run pods and the training pod.
"""

import ast
import copy
import json
import re
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml
from dagster._core.instance.config import dagster_instance_config

from genai_assets import settings
from genai_assets.defs.automation.domains import (
    BATCH_INFERENCE_GROUP,
    FINE_TUNING_GROUP,
    RAG_GROUP,
)
from genai_assets.defs.resources import build_resources
from genai_assets_tests.k8s_validation import validate_k8s_fragment
from genai_assets_tests.production import helm_chart

SECRET_NAME = re.compile(r"(^|_)(KEY|SECRET|PASSWORD|TOKEN)(_|$)", re.IGNORECASE)
DOMAIN_TAG = "genai_assets/domain"


@pytest.fixture(scope="module")
def values() -> dict[str, Any]:
    return helm_chart.load_values()


def test_values_validate_against_the_chart_schema(values) -> None:
    assert helm_chart.schema_errors(values) == []
    assert list(helm_chart.unknown_keys(values)) == []


def test_the_schema_file_is_the_charts_own() -> None:
    schema = helm_chart.chart_schema()
    assert schema["title"] == "DagsterHelmValues"
    # Sections of the real chart that a trimmed copy would not carry.
    for section in ("computeLogManager", "dagsterDaemon", "retention", "ingress", "busybox"):
        assert section in schema["properties"]
    assert "runMonitoring" in schema["definitions"]["Daemon"]["properties"]
    assert "dagsterHome" in schema["definitions"]["Global"]["properties"]


@pytest.mark.parametrize(
    ("path", "value"),
    [
        # Keys the chart accepts that a trimmed schema rejected.
        (("global", "dagsterHome"), "/opt/dagster/dagster_home"),
        (("concurrency", "pools", "opGranularityRunBuffer"), 1),
        (("dagsterDaemon", "runMonitoring", "cancelTimeoutSeconds"), 300),
        (("retention",), {"enabled": True, "sensor": {"purgeAfterDays": 7}}),
        (("dagsterWebserver", "env"), {"EXTRA": "1"}),
        (("runLauncher", "config", "k8sRunLauncher", "jobNamespace"), None),
    ],
)
def test_keys_the_chart_accepts_are_accepted(values, path: tuple, value: Any) -> None:
    changed = _with(values, path, value)
    assert helm_chart.schema_errors(changed) == []
    assert list(helm_chart.unknown_keys(changed)) == []


@pytest.mark.parametrize(
    ("path", "bad_value", "expected"),
    [
        (
            ("dagster-user-deployments", "deployments", 0, "dagsterApiGrpcArg"),
            ["-m", "x"],
            "dagsterApiGrpcArg",
        ),
        (("runLauncher", "config", "k8sRunLauncher", "envSecret"), [], "envSecret"),
        (("runLauncher", "type"), "K8sLauncher", "K8sLauncher"),
        (("postgresql", "postgresqlPort"), 5432, "postgresqlPort"),
        (("concurrency", "runs", "maxConcurentRuns"), 4, "maxConcurentRuns"),
        (("concurrency", "pools", "defaultLimit"), "one", "'one' is not of type"),
        (("computeLogManager", "config", "s3ComputeLogManager", "uploadInterval"), "30s", "30s"),
        (("dagsterDaemon", "runMonitoring"), "on", "'on' is not of type 'object'"),
        (("global", "dagsterHome"), 7, "7 is not of type 'string'"),
        (
            ("dagster-user-deployments", "deployments", 0, "tolerations"),
            [{"key": "gpu", "operater": "Exists"}],
            "operater",
        ),
        (
            ("dagster-user-deployments", "deployments", 0, "envSecrets"),
            [{"secretName": "s3"}],
            "secretName",
        ),
        (
            ("dagster-user-deployments", "deployments", 0, "volumes"),
            [{"name": "x", "persistentVolumeClaim": {"claim": "x"}}],
            "claim",
        ),
        # A list item must be complete: Helm replaces lists, no chart default fills it.
        (
            ("dagster-user-deployments", "deployments", 0, "image"),
            {"repository": "x"},
            "pullPolicy",
        ),
    ],
)
def test_the_check_rejects_what_the_chart_does_not_define(
    values, path: tuple, bad_value: Any, expected: str
) -> None:
    errors = helm_chart.schema_errors(_with(values, path, bad_value))
    errors += [
        f"unknown key {key}" for key in helm_chart.unknown_keys(_with(values, path, bad_value))
    ]
    assert any(expected in error for error in errors), errors


def _with(values: dict, path: tuple, value: Any) -> dict:
    changed = copy.deepcopy(values)
    node = changed
    for part in path[:-1]:
        node = node.setdefault(part, {}) if isinstance(node, dict) else node[part]
    node[path[-1]] = value
    return changed


def _local_instance_config() -> dict[str, Any]:
    return yaml.safe_load((settings.PROJECT_ROOT / "dagster.yaml").read_text())


def _load_instance_config(tmp_path: Path, config: dict[str, Any]) -> dict[str, Any]:
    """``config`` loaded and validated as Dagster loads a dagster.yaml."""
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(config))
    loaded, _ = dagster_instance_config(str(tmp_path))
    return dict(loaded)


def test_rendered_instance_config_is_valid_dagster_config(values, tmp_path) -> None:
    loaded = _load_instance_config(tmp_path, helm_chart.instance_config(values))
    assert loaded["concurrency"]["runs"]["max_concurrent_runs"] == 4
    assert loaded["run_monitoring"]["enabled"] is True


def test_dagster_rejects_a_bad_rendered_value(values, tmp_path) -> None:
    broken = _with(values, ("dagsterDaemon", "runMonitoring", "pollIntervalSeconds"), "30s")
    with pytest.raises(dg.DagsterInvalidConfigError, match="poll_interval_seconds"):
        _load_instance_config(tmp_path, helm_chart.instance_config(broken))


def test_same_concurrency_rules_as_the_local_instance(values) -> None:
    local = _local_instance_config()["concurrency"]
    helm = helm_chart.instance_config(values)["concurrency"]
    assert helm["pools"] == local["pools"]
    assert helm["runs"]["max_concurrent_runs"] == local["runs"]["max_concurrent_runs"]
    # Every local run limit holds in production too.
    for limit in local["runs"].get("tag_concurrency_limits", []):
        assert limit in helm["runs"]["tag_concurrency_limits"]


def test_one_run_per_domain_at_a_time(values) -> None:
    limits = helm_chart.instance_config(values)["concurrency"]["runs"]["tag_concurrency_limits"]
    per_domain = {item["value"]: item["limit"] for item in limits if item["key"] == DOMAIN_TAG}
    assert per_domain == {RAG_GROUP: 1, FINE_TUNING_GROUP: 1, BATCH_INFERENCE_GROUP: 1}


def test_limits_in_both_places_are_refused_as_the_chart_does(values) -> None:
    both = _with(
        values,
        ("dagsterDaemon", "runCoordinator", "config", "queuedRunCoordinator", "maxConcurrentRuns"),
        10,
    )
    with pytest.raises(ValueError, match="refuses to render both"):
        helm_chart.instance_config(both)


def test_a_run_monitoring_key_the_chart_drops_is_an_error(values) -> None:
    dropped = _with(values, ("dagsterDaemon", "runMonitoring", "maxRuntimeSeconds"), 7200)
    assert helm_chart.schema_errors(dropped) == []  # the schema leaves runMonitoring free-form
    with pytest.raises(ValueError, match="maxRuntimeSeconds is not rendered"):
        helm_chart.instance_config(dropped)


def test_run_monitoring_fails_dead_runs_and_frees_their_slots_within_a_minute(values) -> None:
    monitoring = helm_chart.instance_config(values)["run_monitoring"]
    assert monitoring["max_resume_run_attempts"] == 0
    assert (
        monitoring["poll_interval_seconds"] + monitoring["free_slots_after_run_end_seconds"] <= 60
    )
    local = _local_instance_config().get("run_monitoring")
    if local is not None:  # the local instance's monitoring, where dagster.yaml has it
        assert local.get("enabled") is True


def test_compute_logs_go_to_the_code_locations_bucket(values) -> None:
    from dagster_aws.s3.compute_log_manager import S3ComputeLogManager

    manager_type, config = helm_chart.compute_log_manager_config(values)
    assert manager_type == "S3ComputeLogManager"
    result = dg._config.process_config(S3ComputeLogManager.config_type(), config)  # noqa: SLF001
    assert result.success, result.errors
    env = helm_chart.deployment_env(values)
    assert config["bucket"] == env["GENAI_ASSETS_S3_BUCKET"]
    assert config["region"] == env["AWS_REGION"]
    # The webserver shows the logs, so it reads the bucket too.
    secrets = [ref["name"] for ref in values["dagsterWebserver"]["envSecrets"]]
    assert "genai-assets-s3" in secrets


def test_code_location_runs_this_project_in_production(values) -> None:
    deployment = helm_chart.user_deployment(values)
    args = deployment["dagsterApiGrpcArgs"]
    assert args == ["--module-name", "genai_assets.definitions"]
    workspace = yaml.safe_load((settings.PROJECT_ROOT / "workspace.yaml").read_text())
    (location,) = workspace["load_from"]
    assert location["python_module"]["module_name"] == args[1]
    assert deployment["includeConfigInLaunchedRuns"] == {"enabled": True}
    env = helm_chart.deployment_env(values)
    assert env[settings.ENVIRONMENT_VARIABLE] == "production"
    assert env["GENAI_ASSETS_S3_BUCKET"]
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["postgresql"]["postgresqlScheme"] == "postgresql+psycopg2"
    assert values["global"]["dagsterHome"] == "/opt/dagster/dagster_home"  # the image's


def test_secrets_are_only_referenced_never_written(values) -> None:
    text = helm_chart.VALUES_PATH.read_text()
    assert "postgresqlPassword" not in text
    assert values["generatePostgresqlPasswordSecret"] is False
    assert values["global"]["postgresqlSecretName"]
    assert [name for name in helm_chart.deployment_env(values) if SECRET_NAME.search(name)] == []
    secret_refs = [item["name"] for item in helm_chart.user_deployment(values)["envSecrets"]]
    assert secret_refs == ["genai-assets-s3", "genai-assets-api-keys"]


def test_gpu_settings_are_valid_kubernetes_scheduling(values, monkeypatch) -> None:
    from genai_assets import deployment

    env = helm_chart.deployment_env(values)
    for name in (deployment.GPU_NODE_SELECTOR_VARIABLE, deployment.GPU_TOLERATIONS_VARIABLE):
        monkeypatch.setenv(name, env[name])
    validate_k8s_fragment(
        {
            "containers": [{"name": "train", "image": "x"}],
            "nodeSelector": deployment.gpu_node_selector(),
            "tolerations": deployment.gpu_tolerations(),
        },
        "io.k8s.api.core.v1.PodSpec",
    )
    assert deployment.gpu_tolerations()[0]["key"] == "nvidia.com/gpu"


# --- Every environment variable the code reads is named in the values --------------

READERS = {"get", "getenv", "setdefault", "EnvVar", "_optional_secret"}
PREFIXED_READERS = {"_env", "_env_number"}  # genai_assets.settings: GENAI_ASSETS_ + name


def _name_pattern(node: ast.expr) -> str | None:
    """The variable name a string or f-string argument spells (``*`` for its fields)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(
            part.value if isinstance(part, ast.Constant) else "*" for part in node.values
        )
    return None


def environment_variables_read(package: Path) -> set[str]:
    """Names (``*`` for computed parts) of the variables the package's code reads."""
    names: set[str] = set()
    for path in package.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
                # ENVIRONMENT_VARIABLE = "GENAI_ASSETS_ENV", passed to os.environ.get later.
                if any(
                    isinstance(target, ast.Name) and target.id.endswith("_VARIABLE")
                    for target in node.targets
                ):
                    names.add(node.value.value)
            elif isinstance(node, ast.Call) and node.args:
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                pattern = _name_pattern(node.args[0])
                if pattern is None:
                    continue
                if called in PREFIXED_READERS:
                    names.add("GENAI_ASSETS_" + pattern)
                elif called in READERS and (
                    called in {"EnvVar", "_optional_secret"} or "environ" in ast.unparse(func)
                ):
                    names.add(pattern)
            elif (
                isinstance(node, ast.Subscript)
                and isinstance(node.ctx, ast.Load)
                and "environ" in ast.unparse(node.value)
            ):
                pattern = _name_pattern(node.slice)
                if pattern:
                    names.add(pattern)
            elif isinstance(node, ast.Compare) and any(
                "environ" in ast.unparse(c) for c in node.comparators
            ):
                pattern = _name_pattern(node.left)
                if pattern:
                    names.add(pattern)
    return {name for name in names if re.fullmatch(r"[A-Z*][A-Z0-9_*]*", name)}


def test_the_scan_finds_the_variables_the_code_reads() -> None:
    found = environment_variables_read(settings.PROJECT_ROOT / "genai_assets")
    # One of each way of reading: a *_VARIABLE constant, dg.EnvVar, os.environ.get,
    # `in os.environ`, the settings module's prefixed readers, an f-string family.
    for name in (
        "GENAI_ASSETS_ENV",
        "TRAINING_IMAGE",
        "QDRANT_URL",
        "OPENAI_API_KEY",
        "GENAI_ASSETS_SENSOR_INTERVAL_S",
        "GENAI_ASSETS_*_CRON",
    ):
        assert name in found, sorted(found)


def test_every_environment_variable_the_code_reads_is_documented(values) -> None:
    text = helm_chart.VALUES_PATH.read_text()
    undocumented = []
    for name in sorted(environment_variables_read(settings.PROJECT_ROOT / "genai_assets")):
        pattern = re.escape(name).replace(r"\*", r"[A-Z0-9_<>]+")
        if not re.search(rf"(?<![A-Z0-9_]){pattern}(?![A-Z0-9_])", text):
            undocumented.append(name)
    assert undocumented == [], (
        f"read by the code but not named in helm/values.yaml: {undocumented}; set them in "
        "the user deployment's env (or a secret), or name them in its comments with their default"
    )


# --- Fine-tuning and batch inference volumes -----------------------------------------


def _mounts(deployment: dict[str, Any]) -> dict[str, str]:
    """``{mount path: claim name}`` of the code location's volume mounts."""
    claims = {
        volume["name"]: volume["persistentVolumeClaim"]["claimName"]
        for volume in deployment["volumes"]
        if "persistentVolumeClaim" in volume
    }
    return {mount["mountPath"]: claims[mount["name"]] for mount in deployment["volumeMounts"]}


def test_training_pod_mounts_the_code_locations_artifact_volume(values, monkeypatch) -> None:
    env = helm_chart.deployment_env(values)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    runner = build_resources("production")["training_runner"]
    assert runner.backend == "kubernetes"
    assert runner.image == env["TRAINING_IMAGE"]
    assert runner.namespace == env["TRAINING_NAMESPACE"] == "dagster"  # the release's
    pod = runner.base_pod_spec()
    pod["containers"][0].update(name="training", image=runner.image)
    validate_k8s_fragment(pod, "io.k8s.api.core.v1.PodSpec")
    (volume,) = pod["volumes"]
    (mount,) = pod["containers"][0]["volumeMounts"]
    # The claim the training pod writes to is the one the code location (and through
    # includeConfigInLaunchedRuns, every run pod) has mounted at the same path.
    mounts = _mounts(helm_chart.user_deployment(values))
    assert mount["mountPath"] == env["FINE_TUNING_ROOT"]
    assert mounts[mount["mountPath"]] == volume["persistentVolumeClaim"]["claimName"]
    assert env["GENAI_ASSETS_TRAINING_DATA_DIR"].startswith(env["FINE_TUNING_ROOT"] + "/")
    # On the GPU nodes the values name, like every GPU pod of the deployment.
    assert pod["nodeSelector"] == json.loads(env["GENAI_ASSETS_GPU_NODE_SELECTOR"])
    assert pod["tolerations"] == json.loads(env["GENAI_ASSETS_GPU_TOLERATIONS"])


def test_training_pod_follows_the_deployments_gpu_nodes(values, monkeypatch) -> None:
    for name, value in helm_chart.deployment_env(values).items():
        monkeypatch.setenv(name, value)
    # A cluster whose GPU nodes carry other labels and taints than the defaults.
    selector = {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    tolerations = [{"key": "gpu-pool", "operator": "Equal", "value": "l4", "effect": "NoSchedule"}]
    monkeypatch.setenv("GENAI_ASSETS_GPU_NODE_SELECTOR", json.dumps(selector))
    monkeypatch.setenv("GENAI_ASSETS_GPU_TOLERATIONS", json.dumps(tolerations))
    pod = build_resources("production")["training_runner"].base_pod_spec()
    assert pod["nodeSelector"] == selector
    assert pod["tolerations"] == tolerations


def test_batch_inference_journal_is_on_a_volume(values, monkeypatch) -> None:
    from genai_assets.defs.batch_inference.assets import work_dir_for

    monkeypatch.setenv("DAGSTER_HOME", values["global"]["dagsterHome"])
    journal_root = work_dir_for("prompts.jsonl").parent
    assert str(journal_root) in _mounts(helm_chart.user_deployment(values))


def test_the_volume_claims_are_shipped_and_valid(values) -> None:
    from genai_assets_tests.k8s_validation import validate_k8s_object

    manifests = list(
        yaml.safe_load_all((settings.PROJECT_ROOT / "deploy" / "k8s" / "volumes.yaml").read_text())
    )
    for manifest in manifests:
        validate_k8s_object(manifest)
        assert manifest["spec"]["accessModes"] == ["ReadWriteMany"]  # pods on several nodes
    shipped = {manifest["metadata"]["name"] for manifest in manifests}
    assert set(_mounts(helm_chart.user_deployment(values)).values()) == shipped


def test_the_postgres_instance_config_has_the_helm_rules(values, tmp_path, monkeypatch) -> None:
    # deploy/dagster.postgres.yaml: the instance of a shared server outside Kubernetes.
    for name in ("DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD"):
        monkeypatch.setenv(name, "x")
    monkeypatch.setenv("DAGSTER_PG_DB", "dagster")
    shared = yaml.safe_load(
        (settings.PROJECT_ROOT / "deploy" / "dagster.postgres.yaml").read_text()
    )
    loaded = _load_instance_config(tmp_path, shared)
    helm = helm_chart.instance_config(values)
    assert loaded["concurrency"] == helm["concurrency"]
    for key in ("enabled", "poll_interval_seconds", "free_slots_after_run_end_seconds"):
        assert loaded["run_monitoring"][key] == helm["run_monitoring"][key]
