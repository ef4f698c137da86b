"""Kubernetes settings the deployment passes to the code through environment variables.

The Helm values (``helm/values.yaml``) set where GPU steps are scheduled; code
that builds a GPU pod spec or ``dagster-k8s/config`` tags reads them here, at
run or definitions-load time (never at import). No dagster import.
"""

import json
import os
from typing import Any

GPU_NODE_SELECTOR_VARIABLE = "GENAI_ASSETS_GPU_NODE_SELECTOR"
GPU_TOLERATIONS_VARIABLE = "GENAI_ASSETS_GPU_TOLERATIONS"
GPU_IMAGE_VARIABLE = "GENAI_ASSETS_GPU_IMAGE"

# The labels and taints of NVIDIA GPU nodes set up by the NVIDIA GPU operator.
DEFAULT_GPU_NODE_SELECTOR = {"nvidia.com/gpu.present": "true"}
DEFAULT_GPU_TOLERATIONS = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]


def _json_from_env(name: str, default: Any, expected: type) -> Any:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ValueError(f"{name} is not valid JSON ({error.msg}): {raw!r}") from error
    if not isinstance(value, expected):
        raise ValueError(f"{name} must be a JSON {expected.__name__}, got {type(value).__name__}")
    return value


def gpu_node_selector() -> dict[str, str]:
    """Node labels GPU pods select, from $GENAI_ASSETS_GPU_NODE_SELECTOR (a JSON object)."""
    selector = _json_from_env(GPU_NODE_SELECTOR_VARIABLE, DEFAULT_GPU_NODE_SELECTOR, dict)
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in selector.items()):
        raise ValueError(f"{GPU_NODE_SELECTOR_VARIABLE} must map label names to string values")
    return dict(selector)


def gpu_tolerations() -> list[dict[str, Any]]:
    """Taints GPU pods tolerate, from $GENAI_ASSETS_GPU_TOLERATIONS (a JSON list, k8s form)."""
    tolerations = _json_from_env(GPU_TOLERATIONS_VARIABLE, DEFAULT_GPU_TOLERATIONS, list)
    if not all(isinstance(item, dict) for item in tolerations):
        raise ValueError(f"{GPU_TOLERATIONS_VARIABLE} must be a JSON list of objects")
    return [dict(item) for item in tolerations]


def gpu_image() -> str | None:
    """The CUDA image for GPU pods ($GENAI_ASSETS_GPU_IMAGE), or None to keep the run's image."""
    return os.environ.get(GPU_IMAGE_VARIABLE, "").strip() or None
