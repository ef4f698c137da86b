"""Kubernetes GPU settings for training pods, as plain dicts (no dagster import).

Two consumers read the same :class:`GpuPodSettings`:

* :func:`training_pod_spec` gives the ``base_pod_spec`` that the
  ``training_runner`` resource hands to dagster-k8s ``PipesK8sClient`` (the
  external training pod, camelCase Kubernetes field names);
* :func:`k8s_op_tags` gives the ``dagster-k8s/config`` op tags for users of the
  ``k8s_job_executor``, who run the whole step in a GPU pod (snake_case, as
  dagster-k8s expects).
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

DEFAULT_TOLERATIONS: tuple[dict[str, str], ...] = (
    {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
)


@dataclass(frozen=True)
class GpuPodSettings:
    """Resources and placement of a GPU training pod."""

    gpu_count: int = 1
    gpu_resource: str = "nvidia.com/gpu"
    memory: str = "32Gi"
    cpu: str = "8"
    node_selector: dict[str, str] = field(
        default_factory=lambda: {"nvidia.com/gpu.present": "true"}
    )
    tolerations: tuple[dict[str, str], ...] = DEFAULT_TOLERATIONS
    artifact_volume_claim: str | None = None
    artifact_mount_path: str | None = None
    service_account_name: str | None = None
    image: str | None = None  # op tags only: the step's image (e.g. a CUDA build)

    def __post_init__(self) -> None:
        """Reject settings Kubernetes would reject later, with the field named."""
        if self.gpu_count < 0:
            raise ValueError(f"gpu_count must be >= 0, got {self.gpu_count}")
        if bool(self.artifact_volume_claim) != bool(self.artifact_mount_path):
            raise ValueError("artifact_volume_claim and artifact_mount_path go together")

    def limits(self) -> dict[str, str]:
        """Container resource limits: GPUs (when any) and memory."""
        limits = {"memory": self.memory}
        if self.gpu_count:
            limits[self.gpu_resource] = str(self.gpu_count)
        return limits

    def requests(self) -> dict[str, str]:
        """Container resource requests: CPU, memory and GPUs (GPUs must equal the limit)."""
        return {"cpu": self.cpu, **self.limits()}


def _camel_case(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.capitalize() for word in rest)


def _container_and_pod(
    settings: GpuPodSettings, field_name: Callable[[str], str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The container and pod settings both consumers share, named by ``field_name``.

    ``field_name`` turns the snake_case names used here into the consumer's
    (camelCase for a Kubernetes pod spec); it applies to field names only, never
    to values such as node labels.
    """
    container: dict[str, Any] = {
        "resources": {"limits": settings.limits(), "requests": settings.requests()},
    }
    pod: dict[str, Any] = {
        field_name("node_selector"): dict(settings.node_selector),
        "tolerations": [dict(t) for t in settings.tolerations],
    }
    if settings.artifact_volume_claim:
        container[field_name("volume_mounts")] = [
            {"name": "artifacts", field_name("mount_path"): settings.artifact_mount_path}
        ]
        pod["volumes"] = [
            {
                "name": "artifacts",
                field_name("persistent_volume_claim"): {
                    field_name("claim_name"): settings.artifact_volume_claim
                },
            }
        ]
    return container, pod


def training_pod_spec(settings: GpuPodSettings) -> dict[str, Any]:
    """The ``base_pod_spec`` for the Pipes training pod (Kubernetes camelCase names)."""
    container, pod = _container_and_pod(settings, _camel_case)
    spec: dict[str, Any] = {"restartPolicy": "Never", "containers": [container], **pod}
    if settings.service_account_name:
        spec["serviceAccountName"] = settings.service_account_name
    return spec


def k8s_op_tags(settings: GpuPodSettings) -> dict[str, Any]:
    """``{"dagster-k8s/config": ...}`` op tags requesting the same GPU pod for the step."""
    container_config, pod_spec_config = _container_and_pod(settings, lambda name: name)
    if settings.image:
        container_config["image"] = settings.image
    return {
        "dagster-k8s/config": {
            "container_config": container_config,
            "pod_spec_config": pod_spec_config,
        }
    }
