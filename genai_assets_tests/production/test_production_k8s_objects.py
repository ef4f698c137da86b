"""The Kubernetes objects this deployment produces validate against Kubernetes' schemas.

Built offline with dagster-k8s's own constructor (construct_dagster_k8s_job):
the Job of a GPU step from its op tags, and a run's Job from the Helm values'
K8sRunLauncher settings merged (by dagster-k8s's K8sContainerContext) with the
container context the chart gives the code location's runs. Validated with
genai_assets_tests.k8s_validation.
"""

import json
import os
import subprocess
import sys
from types import SimpleNamespace
from typing import Any

import dagster as dg
import kubernetes
import pytest
from dagster_k8s.container_context import K8sContainerContext
from dagster_k8s.job import (
    DagsterK8sJobConfig,
    UserDefinedDagsterK8sConfig,
    construct_dagster_k8s_job,
    get_user_defined_k8s_config,
)

from genai_assets import deployment, settings
from genai_assets.definitions import defs as load_definitions
from genai_assets.defs.automation.policies import embedding_op_tags
from genai_assets_tests.k8s_validation import (
    from_dagster_k8s_dict,
    validate_k8s_fragment,
    validate_k8s_object,
)
from genai_assets_tests.production import helm_chart

VALUES = helm_chart.load_values()
USER_DEPLOYMENT = helm_chart.user_deployment(VALUES)
SECRETS = [ref["name"] for ref in USER_DEPLOYMENT["envSecrets"]]
IMAGE = f"{USER_DEPLOYMENT['image']['repository']}:{USER_DEPLOYMENT['image']['tag']}"


def _job_config(image: str) -> DagsterK8sJobConfig:
    launcher = VALUES["runLauncher"]["config"]["k8sRunLauncher"]
    return DagsterK8sJobConfig(
        job_image=image,
        dagster_home=VALUES["global"]["dagsterHome"],
        image_pull_policy=launcher["imagePullPolicy"],
        service_account_name="dagster",
        instance_config_map="dagster-instance",
        postgres_password_secret=VALUES["global"]["postgresqlSecretName"],
        env_config_maps=launcher["envConfigMaps"],
        env_secrets=[*launcher["envSecrets"], *SECRETS],
        env_vars=launcher["envVars"],
        volume_mounts=launcher["volumeMounts"],
        volumes=launcher["volumes"],
    )


def _gpu_op_tags(gpus: int = 1) -> dict[str, Any]:
    return {
        "dagster-k8s/config": {
            "container_config": {
                "resources": {
                    "requests": {"cpu": "4", "memory": "24Gi", "nvidia.com/gpu": str(gpus)},
                    "limits": {"memory": "32Gi", "nvidia.com/gpu": str(gpus)},
                }
            },
            "pod_spec_config": {
                "node_selector": deployment.gpu_node_selector(),
                "tolerations": deployment.gpu_tolerations(),
            },
        }
    }


def _step_job(op_tags: dict[str, Any], image: str) -> Any:
    @dg.asset(op_tags=op_tags, pool="gpu_training", group_name="fine_tuning_sample")
    def sample_fine_tune() -> dict:
        return {}

    return _job_of_step(sample_fine_tune.op, image)


def _job_of_step(op: dg.OpDefinition, image: str) -> Any:
    # What the k8s executor reads: the op's tags (dict values arrive as JSON strings).
    user_defined = get_user_defined_k8s_config(op.tags)
    return construct_dagster_k8s_job(
        job_config=_job_config(image),
        args=["dagster", "api", "execute_step", '{"run_id": "sample"}'],
        job_name="dagster-step-3f2a9c",
        pod_name="dagster-step-3f2a9c",
        component="step_worker",
        user_defined_k8s_config=user_defined,
        labels={"dagster/job": "__ASSET_JOB", "dagster/op": op.name},
        env_vars=[{"name": "DAGSTER_RUN_JOB_NAME", "value": "__ASSET_JOB"}],
    )


@pytest.fixture
def helm_gpu_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for item in USER_DEPLOYMENT["env"]:
        if item["name"].startswith("GENAI_ASSETS_GPU_"):
            monkeypatch.setenv(item["name"], item["value"])


def test_gpu_step_job_from_op_tags_validates(helm_gpu_env) -> None:
    job = validate_k8s_object(_step_job(_gpu_op_tags(gpus=2), deployment.gpu_image()))
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"].endswith("-cuda")
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert container["resources"]["requests"]["nvidia.com/gpu"] == "2"
    assert pod["nodeSelector"] == json.loads(
        next(
            i["value"]
            for i in USER_DEPLOYMENT["env"]
            if i["name"] == deployment.GPU_NODE_SELECTOR_VARIABLE
        )
    )
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]
    # Secrets arrive by reference, never as values.
    assert {ref["secretRef"]["name"] for ref in container["envFrom"] if "secretRef" in ref} == set(
        SECRETS
    )
    assert all("valueFrom" in env or "value" in env for env in container.get("env", []))


def _run_job() -> Any:
    """The Job of a run, built as the K8sRunLauncher builds it from the Helm values.

    The run launcher's own settings, merged with the container context the chart
    gives runs of the code location (includeConfigInLaunchedRuns), by dagster-k8s.
    """
    launcher = VALUES["runLauncher"]["config"]["k8sRunLauncher"]
    run_k8s = launcher.get("runK8sConfig", {})
    launcher_context = K8sContainerContext(
        image_pull_policy=launcher["imagePullPolicy"],
        env_config_maps=launcher["envConfigMaps"],
        env_secrets=launcher["envSecrets"],
        env_vars=launcher["envVars"],
        volume_mounts=launcher["volumeMounts"],
        volumes=launcher["volumes"],
        resources=launcher.get("resources"),
        run_k8s_config=UserDefinedDagsterK8sConfig.from_dict(
            {helm_chart.snake_case(key): value for key, value in run_k8s.items()}
        ),
    )
    code_location = K8sContainerContext.create_from_config(
        helm_chart.code_location_container_context(VALUES)
    )
    context = launcher_context.merge(code_location)
    return construct_dagster_k8s_job(
        job_config=DagsterK8sJobConfig(
            job_image=IMAGE,
            dagster_home=VALUES["global"]["dagsterHome"],
            instance_config_map="dagster-instance",
            postgres_password_secret=VALUES["global"]["postgresqlSecretName"],
        ),
        args=["dagster", "api", "execute_run", '{"run_id": "sample"}'],
        job_name="dagster-run-5b7e1d",
        component="run_worker",
        user_defined_k8s_config=context.run_k8s_config,
    )


def test_run_job_from_helm_values_validates() -> None:
    data = validate_k8s_object(_run_job())
    assert data["spec"]["ttlSecondsAfterFinished"] == 86400
    pod = data["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    # The run pod is sized by the code location's resources: through the container
    # context they win over anything the run launcher sets.
    assert container["resources"] == USER_DEPLOYMENT["resources"]
    # The fine-tuning volume and the batch inference journal are mounted in the run pod.
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    for mount in USER_DEPLOYMENT["volumeMounts"]:
        assert mounts[mount["mountPath"]] == mount["name"]
    claims = {
        volume["name"]: volume["persistentVolumeClaim"]["claimName"]
        for volume in pod["volumes"]
        if "persistentVolumeClaim" in volume
    }
    assert claims == {
        volume["name"]: volume["persistentVolumeClaim"]["claimName"]
        for volume in USER_DEPLOYMENT["volumes"]
    }
    assert pod["securityContext"]["fsGroup"] == 10001  # the image's uid writes the volumes
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env["FINE_TUNING_ROOT"] == "/mnt/fine-tuning"
    assert {ref["secretRef"]["name"] for ref in container["envFrom"] if "secretRef" in ref} == set(
        SECRETS
    )


def test_run_launcher_sets_no_resources_that_would_be_overridden() -> None:
    launcher = VALUES["runLauncher"]["config"]["k8sRunLauncher"]
    assert "resources" not in launcher
    assert "containerConfig" not in launcher.get("runK8sConfig", {})


def test_validation_catches_a_broken_object(helm_gpu_env) -> None:
    job = _step_job(_gpu_op_tags(), IMAGE)
    job.spec.template.spec.node_selector = {"nvidia.com/gpu.present": True}  # must be a string
    with pytest.raises(AssertionError, match=r"nodeSelector"):
        validate_k8s_object(job)
    with pytest.raises(AssertionError, match=r"'operater' was unexpected"):
        validate_k8s_fragment(
            {"key": "nvidia.com/gpu", "operater": "Exists"}, "io.k8s.api.core.v1.Toleration"
        )


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (deployment.GPU_NODE_SELECTOR_VARIABLE, "{not json", "is not valid JSON"),
        (deployment.GPU_NODE_SELECTOR_VARIABLE, '["a"]', "must be a JSON dict"),
        (deployment.GPU_TOLERATIONS_VARIABLE, '{"key": "x"}', "must be a JSON list"),
    ],
)
def test_bad_gpu_settings_are_clear_errors(
    monkeypatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=f"{variable}.*{message}|{variable} {message}"):
        deployment.gpu_node_selector() if "SELECTOR" in variable else deployment.gpu_tolerations()


def test_snake_case_pod_specs_are_validated_in_kubernetes_form(helm_gpu_env) -> None:
    # The form a Pipes base_pod_spec or op tag pod_spec_config is written in.
    base_pod_spec = {
        "node_selector": deployment.gpu_node_selector(),
        "tolerations": deployment.gpu_tolerations(),
        "containers": [
            {
                "name": "train",
                "image": deployment.gpu_image(),
                "resources": {"limits": {"nvidia.com/gpu": "1"}},
                "env_from": [{"secret_ref": {"name": "genai-assets-s3"}}],
            }
        ],
        "restart_policy": "Never",
    }
    pod_spec = from_dagster_k8s_dict(kubernetes.client.V1PodSpec, base_pod_spec)
    validate_k8s_fragment(pod_spec, "io.k8s.api.core.v1.PodSpec")
    assert pod_spec["containers"][0]["envFrom"] == [{"secretRef": {"name": "genai-assets-s3"}}]
    assert pod_spec["nodeSelector"] == deployment.gpu_node_selector()


EMBEDDING_GPUS = "GENAI_ASSETS_EMBEDDING_GPUS"
_EMBEDDING_STEP = """
import json
from genai_assets.definitions import defs
op = defs().resolve_assets_def("document_embeddings").node_def
print(json.dumps({"name": op.name, "tags": dict(op.tags), "pool": op.pool,
                  "retries": op.retry_policy.max_retries if op.retry_policy else None}))
"""


def _embedding_op_loaded_with(env: dict[str, str]) -> SimpleNamespace:
    """The document_embeddings op as a code server started with ``env`` loads it.

    Its op tags are declared on the decorator, so they are read when the asset
    module is imported: a fresh process, like the code server's.
    """
    result = subprocess.run(
        [sys.executable, "-c", _EMBEDDING_STEP],
        env={**os.environ, "PYTHONPATH": str(settings.PROJECT_ROOT), **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return SimpleNamespace(**json.loads(result.stdout.strip().splitlines()[-1]))


def test_document_embeddings_runs_on_a_gpu_when_the_deployment_asks(helm_gpu_env) -> None:
    op = _embedding_op_loaded_with({EMBEDDING_GPUS: "1"})  # with the Helm values' GPU env
    assert op.pool == "qdrant_local" and op.retries is not None  # the rest of its policy kept
    job = validate_k8s_object(_job_of_step(op, IMAGE))
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["image"] == deployment.gpu_image()  # the CUDA image of the values
    assert pod["nodeSelector"] == deployment.gpu_node_selector()
    assert pod["tolerations"] == deployment.gpu_tolerations()


def test_document_embeddings_stays_on_the_run_pod_by_default(monkeypatch) -> None:
    monkeypatch.delenv(EMBEDDING_GPUS, raising=False)
    assert embedding_op_tags() == {}
    op = load_definitions().resolve_assets_def("document_embeddings").node_def
    assert "dagster-k8s/config" not in op.tags


@pytest.mark.parametrize("value", ["two", "-1"])
def test_embedding_gpus_must_be_a_count(monkeypatch, value: str) -> None:
    monkeypatch.setenv(EMBEDDING_GPUS, value)
    with pytest.raises(ValueError, match=EMBEDDING_GPUS):
        embedding_op_tags()
