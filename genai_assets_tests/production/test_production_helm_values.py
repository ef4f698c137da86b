"""helm/values.yaml parses and uses only keys the Dagster chart defines (checked offline).

helm/chart-values.schema.json is a trimmed key structure of the chart's
values.schema.json (dagster/dagster 1.13); Kubernetes-typed values inside it
(env, envSecrets, tolerations, resources, ...) are checked against Kubernetes'
strict schemas from kubernetes-validate.
"""

import copy
import json
import re
from typing import Any

import jsonschema
import pytest
import yaml

from genai_assets import settings
from genai_assets_tests.k8s_validation import k8s_registry, validate_k8s_fragment

HELM_DIR = settings.PROJECT_ROOT / "helm"
SECRET_NAME = re.compile(r"(^|_)(KEY|SECRET|PASSWORD|TOKEN)(_|$)", re.IGNORECASE)


@pytest.fixture(scope="module")
def values() -> dict[str, Any]:
    return yaml.safe_load((HELM_DIR / "values.yaml").read_text())


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads((HELM_DIR / "chart-values.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, registry=k8s_registry())


def _errors(validator: jsonschema.Draft202012Validator, values: dict) -> list[str]:
    return [
        f"{'/'.join(str(p) for p in error.absolute_path)}: {error.message}"
        for error in validator.iter_errors(values)
    ]


def _deployment(values: dict) -> dict[str, Any]:
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    return deployment


def _env(values: dict) -> dict[str, str]:
    return {item["name"]: item["value"] for item in _deployment(values)["env"]}


def test_values_use_only_chart_keys(values, validator) -> None:
    assert _errors(validator, values) == []


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
    ],
)
def test_the_check_rejects_keys_the_chart_does_not_define(
    values, validator, path: tuple, bad_value: Any, expected: str
) -> None:
    broken = copy.deepcopy(values)
    node = broken
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = bad_value
    errors = _errors(validator, broken)
    assert errors and any(expected in error for error in errors), errors


def test_code_location_runs_this_project_in_production(values) -> None:
    deployment = _deployment(values)
    args = deployment["dagsterApiGrpcArgs"]
    python_file = args[args.index("--python-file") + 1]
    assert (settings.PROJECT_ROOT / python_file).is_file()
    assert args[args.index("--working-directory") + 1] == "/opt/dagster/app"  # Dockerfile WORKDIR
    assert deployment["includeConfigInLaunchedRuns"] == {"enabled": True}
    env = _env(values)
    assert env[settings.ENVIRONMENT_VARIABLE] == "production"
    assert env["GENAI_ASSETS_S3_BUCKET"]
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["postgresql"]["postgresqlScheme"] == "postgresql+psycopg2"


def test_secrets_are_only_referenced_never_written(values) -> None:
    text = (HELM_DIR / "values.yaml").read_text()
    assert "postgresqlPassword" not in text
    assert values["generatePostgresqlPasswordSecret"] is False
    assert values["global"]["postgresqlSecretName"]
    assert [name for name in _env(values) if SECRET_NAME.search(name)] == []
    secret_refs = [item["name"] for item in _deployment(values)["envSecrets"]]
    assert secret_refs == ["genai-assets-s3", "genai-assets-api-keys"]


def test_gpu_settings_are_valid_kubernetes_scheduling(values, monkeypatch) -> None:
    from genai_assets import deployment

    env = _env(values)
    for name in (deployment.GPU_NODE_SELECTOR_VARIABLE, deployment.GPU_TOLERATIONS_VARIABLE):
        monkeypatch.setenv(name, env[name])
    selector = deployment.gpu_node_selector()
    tolerations = deployment.gpu_tolerations()
    validate_k8s_fragment(
        {
            "containers": [{"name": "train", "image": "x"}],
            "nodeSelector": selector,
            "tolerations": tolerations,
        },
        "io.k8s.api.core.v1.PodSpec",
    )
    assert tolerations[0]["key"] == "nvidia.com/gpu"


def test_dockerfile_installs_like_the_readme() -> None:
    dockerfile = (settings.PROJECT_ROOT / "Dockerfile").read_text()
    lines = [line.strip() for line in dockerfile.splitlines()]
    torch_line = next(i for i, line in enumerate(lines) if "torch==${TORCH_VERSION}" in line)
    package_line = next(
        i for i, line in enumerate(lines) if re.search(r"pip install \.(\s|$)", line)
    )
    assert torch_line < package_line
    assert re.search(r"^ARG TORCH_VERSION=2\.13\.0$", dockerfile, re.MULTILINE)
    assert "WORKDIR /opt/dagster/app" in lines
    assert "ENV GENAI_ASSETS_ENV=production" in lines
