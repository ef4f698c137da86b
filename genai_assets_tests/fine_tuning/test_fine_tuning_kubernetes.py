"""The Kubernetes path, offline: the Pipes pod and the k8s-executor Job carry the GPU request."""

import json

import kubernetes
import kubernetes_validate
from dagster_k8s.job import (
    DagsterK8sJobConfig,
    UserDefinedDagsterK8sConfig,
    construct_dagster_k8s_job,
    get_user_defined_k8s_config,
)
from dagster_k8s.pipes import build_pod_body

from genai_assets.defs.fine_tuning.training import GPU_OP_TAGS, fine_tuned_model
from genai_assets.fine_tuning.k8s import GpuPodSettings, k8s_op_tags
from genai_assets.resources.training_runner import TrainingRunnerResource

TOLERATIONS = [
    {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "team", "operator": "Equal", "value": "ml", "effect": "NoSchedule"},
]
NODE_SELECTOR = {"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"}


def validate(obj, kind):
    """Schema-check a kubernetes client object, as the API server would."""
    manifest = kubernetes.client.ApiClient().sanitize_for_serialization(obj)
    manifest.update({"apiVersion": "batch/v1" if kind == "Job" else "v1", "kind": kind})
    kubernetes_validate.validate(manifest, "1.30", strict=True)


def configured_runner():
    return TrainingRunnerResource(
        backend="kubernetes",
        image="registry.example.com/genai-assets:1.0",
        gpu_count=2,
        memory="64Gi",
        cpu="12",
        node_selector=NODE_SELECTOR,
        tolerations=TOLERATIONS,
        artifact_volume_claim="fine-tuning-artifacts",
        artifact_mount_path="/mnt/fine_tuning",
    )


def test_pipes_pod_spec_carries_gpu_limits_node_selector_and_tolerations():
    runner = configured_runner()
    pod = build_pod_body(
        pod_name="dagster-training-test",
        image=runner.image,
        command=runner.command(),
        env_vars={"DAGSTER_PIPES_CONTEXT": "x", "FINE_TUNING_ROOT": "/mnt/fine_tuning"},
        base_pod_meta=None,
        base_pod_spec=runner.base_pod_spec(),
    )
    container = pod.spec.containers[0]
    assert container.image == "registry.example.com/genai-assets:1.0"
    assert container.command == ["python", "-m", "genai_assets.fine_tuning.sft"]
    assert container.resources.limits == {"nvidia.com/gpu": "2", "memory": "64Gi"}
    assert container.resources.requests == {"nvidia.com/gpu": "2", "memory": "64Gi", "cpu": "12"}
    assert container.volume_mounts[0].mount_path == "/mnt/fine_tuning"
    assert pod.spec.volumes[0].persistent_volume_claim.claim_name == "fine-tuning-artifacts"
    assert pod.spec.node_selector == NODE_SELECTOR
    assert [t.to_dict() | {} for t in pod.spec.tolerations] == [
        {
            "key": t["key"],
            "operator": t["operator"],
            "value": t.get("value"),
            "effect": t["effect"],
            "toleration_seconds": None,
        }
        for t in TOLERATIONS
    ]
    assert pod.spec.restart_policy == "Never"
    validate(pod, "Pod")


def test_k8s_executor_job_from_the_assets_op_tags_requests_the_gpu():
    tags = fine_tuned_model.op.tags
    assert json.loads(tags["dagster-k8s/config"]) == GPU_OP_TAGS["dagster-k8s/config"]
    assert fine_tuned_model.op.pool == "gpu_training"
    job = construct_dagster_k8s_job(
        job_config=DagsterK8sJobConfig(
            job_image="registry.example.com/genai-assets:1.0",
            dagster_home="/opt/dagster/dagster_home",
            instance_config_map="dagster-instance",
        ),
        args=["dagster", "api", "execute_step"],
        job_name="dagster-step-fine-tuned-model",
        # what the k8s_job_executor does with a step's tags
        user_defined_k8s_config=get_user_defined_k8s_config(tags),
    )
    spec = job.spec.template.spec
    assert spec.containers[0].resources.limits == {"nvidia.com/gpu": "1", "memory": "32Gi"}
    assert spec.node_selector == {"nvidia.com/gpu.present": "true"}
    assert [t.key for t in spec.tolerations] == ["nvidia.com/gpu"]
    validate(job, "Job")


def test_op_tags_follow_the_configured_settings():
    settings = configured_runner().pod_settings()
    tags = k8s_op_tags(settings)["dagster-k8s/config"]
    job = construct_dagster_k8s_job(
        job_config=DagsterK8sJobConfig(
            job_image="img", dagster_home="/opt/dagster", instance_config_map="cm"
        ),
        args=[],
        job_name="step",
        user_defined_k8s_config=UserDefinedDagsterK8sConfig.from_dict(tags),
    )
    spec = job.spec.template.spec
    assert spec.containers[0].resources.limits["nvidia.com/gpu"] == "2"
    assert spec.node_selector == NODE_SELECTOR
    assert [t.to_dict()["value"] for t in spec.tolerations] == [None, "ml"]
    assert spec.volumes[0].persistent_volume_claim.claim_name == "fine-tuning-artifacts"


def test_cpu_only_pod_has_no_gpu_limit():
    assert "nvidia.com/gpu" not in GpuPodSettings(gpu_count=0).limits()
