"""Where the training entry point runs: a local subprocess, or a Kubernetes GPU pod.

Both go through Dagster Pipes, so the asset receives the same logs, loss
messages and final metrics either way. The pod spec comes from
``genai_assets.fine_tuning.k8s.training_pod_spec``, the same function the tests
use to check the GPU limits, node selector and tolerations.
"""

import sys
from collections.abc import Mapping
from typing import Any, Literal

import dagster as dg
from pydantic import Field

from genai_assets.fine_tuning.k8s import DEFAULT_TOLERATIONS, GpuPodSettings, training_pod_spec

TRAINING_MODULE = "genai_assets.fine_tuning.sft"


class TrainingRunnerResource(dg.ConfigurableResource):
    """Launches ``python -m genai_assets.fine_tuning.sft`` under Dagster Pipes."""

    backend: Literal["subprocess", "kubernetes"] = Field(
        default="subprocess",
        description="'subprocess' runs training on this machine (dg.PipesSubprocessClient); "
        "'kubernetes' runs it in a GPU pod (dagster-k8s PipesK8sClient).",
    )
    python_executable: str | None = Field(
        default=None, description="Python for the subprocess; None means this interpreter."
    )
    env: dict[str, str] = Field(
        default_factory=dict, description="Extra environment variables for the training process."
    )
    image: str | None = Field(
        default=None, description="Container image with genai_assets installed (kubernetes)."
    )
    namespace: str = Field(default="default", description="Namespace of the training pod.")
    gpu_count: int = Field(default=1, description="GPUs per training pod (the limit).")
    gpu_resource: str = Field(
        default="nvidia.com/gpu", description="Extended resource name of the GPUs."
    )
    memory: str = Field(default="32Gi", description="Memory request and limit of the pod.")
    cpu: str = Field(default="8", description="CPU request of the pod.")
    node_selector: dict[str, str] = Field(
        default_factory=lambda: {"nvidia.com/gpu.present": "true"},
        description="Node selector placing the pod on GPU nodes.",
    )
    tolerations: list[dict[str, str]] = Field(
        default_factory=lambda: [dict(t) for t in DEFAULT_TOLERATIONS],
        description="Tolerations for tainted GPU nodes.",
    )
    artifact_volume_claim: str | None = Field(
        default=None,
        description="PersistentVolumeClaim holding the fine-tuning root, shared with the "
        "Dagster step (mounted at artifact_mount_path; set FINE_TUNING_ROOT to it).",
    )
    artifact_mount_path: str | None = Field(
        default=None, description="Where the artifact volume is mounted in the pod."
    )
    service_account_name: str | None = Field(
        default=None, description="Service account of the training pod."
    )
    load_incluster_config: bool | None = Field(
        default=None, description="True inside the cluster; None lets dagster-k8s decide."
    )
    kubeconfig_file: str | None = Field(
        default=None, description="kubeconfig for launching pods from outside the cluster."
    )

    def pod_settings(self) -> GpuPodSettings:
        """The GPU pod settings this resource is configured with."""
        return GpuPodSettings(
            gpu_count=self.gpu_count,
            gpu_resource=self.gpu_resource,
            memory=self.memory,
            cpu=self.cpu,
            node_selector=dict(self.node_selector),
            tolerations=tuple(dict(t) for t in self.tolerations),
            artifact_volume_claim=self.artifact_volume_claim,
            artifact_mount_path=self.artifact_mount_path,
            service_account_name=self.service_account_name,
        )

    def base_pod_spec(self) -> dict[str, Any]:
        """The ``base_pod_spec`` handed to ``PipesK8sClient.run``."""
        return training_pod_spec(self.pod_settings())

    def command(self) -> list[str]:
        """The training command line (the image's ``python`` on Kubernetes)."""
        if self.backend == "kubernetes":
            return ["python", "-m", TRAINING_MODULE]
        return [self.python_executable or sys.executable, "-m", TRAINING_MODULE]

    def run(
        self,
        context: dg.AssetExecutionContext,
        extras: Mapping[str, Any],
    ) -> dg.PipesClientCompletedInvocation:
        """Run the training entry point with ``extras`` and wait for it.

        Raises:
            dg.Failure: when the kubernetes backend has no image configured.
        """
        if self.backend == "subprocess":
            client = dg.PipesSubprocessClient(env=dict(self.env))
            return client.run(command=self.command(), context=context, extras=dict(extras))
        if not self.image:
            raise dg.Failure(
                "training_runner backend 'kubernetes' needs an image with genai_assets installed"
            )
        from dagster_k8s import PipesK8sClient

        env = dict(self.env)
        if self.artifact_mount_path:
            env.setdefault("FINE_TUNING_ROOT", self.artifact_mount_path)
        client = PipesK8sClient(
            load_incluster_config=self.load_incluster_config,
            kubeconfig_file=self.kubeconfig_file,
        )
        return client.run(
            context=context,
            extras=dict(extras),
            image=self.image,
            command=self.command(),
            namespace=self.namespace,
            env=env,
            base_pod_spec=self.base_pod_spec(),
        )
