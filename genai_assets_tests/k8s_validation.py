"""Validate Kubernetes objects the project builds against Kubernetes' own schemas, offline.

Uses the JSON schemas shipped inside ``kubernetes-validate`` (strict variant:
unknown fields are errors). Point it at any object: a kubernetes client model
(``V1Job``, ``V1PodSpec``), or a plain dict in Kubernetes' camelCase form.

    validate_k8s_object(job)                                   # has apiVersion + kind
    validate_k8s_fragment(pod_spec, "io.k8s.api.core.v1.PodSpec")
    validate_k8s_fragment(op_tags_container, "io.k8s.api.core.v1.Container")

Dicts in dagster-k8s's snake_case form (``base_pod_spec`` of PipesK8sClient,
``pod_spec_config`` of op tags) go through :func:`from_dagster_k8s_dict` first.
"""

import functools
import json
from importlib import resources
from typing import Any

import jsonschema
import kubernetes
import kubernetes_validate
from referencing import Registry, Resource

# Kubernetes version to validate against (kubernetes-validate ships 1.25 to 1.37).
K8S_VERSION = "1.33.0"
DEFINITIONS_URI = "https://kubernetes.io/api/_definitions.json"


def to_k8s_dict(obj: Any) -> dict[str, Any]:
    """A kubernetes client model as the camelCase dict the API server receives."""
    if isinstance(obj, dict):
        return obj
    # to_dict() would give snake_case attribute names; this gives the wire format.
    return kubernetes.client.ApiClient().sanitize_for_serialization(obj)


def from_dagster_k8s_dict(model_class: type, data: dict[str, Any]) -> dict[str, Any]:
    """A dict in dagster-k8s's accepted form (snake_case or camelCase) as camelCase.

    Builds the kubernetes model the way dagster-k8s does (unknown keys fail here
    already), e.g. ``from_dagster_k8s_dict(kubernetes.client.V1PodSpec, base_pod_spec)``.
    """
    from dagster_k8s.models import k8s_model_from_dict, k8s_snake_case_dict

    return to_k8s_dict(k8s_model_from_dict(model_class, k8s_snake_case_dict(model_class, data)))


@functools.cache
def k8s_registry(version: str = K8S_VERSION) -> Registry:
    """A referencing Registry holding Kubernetes' strict definitions under DEFINITIONS_URI."""
    path = resources.files("kubernetes_validate").joinpath(
        f"kubernetes-json-schema/v{version}-local-strict/_definitions.json"
    )
    contents = json.loads(path.read_text())
    return Registry().with_resource(DEFINITIONS_URI, Resource.from_contents(contents))


def _format(errors: list[jsonschema.ValidationError], what: str) -> str:
    lines = [
        f"  at {'/'.join(str(p) for p in error.absolute_path) or '<root>'}: {error.message}"
        for error in errors
    ]
    return f"{what} does not validate:\n" + "\n".join(lines)


def validate_k8s_object(obj: Any, version: str = K8S_VERSION) -> dict[str, Any]:
    """Validate a whole object (with apiVersion and kind); returns its dict form."""
    data = to_k8s_dict(obj)
    try:
        kubernetes_validate.validate(data, version, strict=True)
    except kubernetes_validate.ValidationError as error:
        path = "/".join(str(p) for p in error.absolute_path) or "<root>"
        raise AssertionError(
            f"{data.get('kind')} {data.get('metadata', {}).get('name')!r} does not validate"
            f" against Kubernetes {version}: at {path}: {error.message}"
        ) from error
    return data


def validate_k8s_fragment(obj: Any, type_name: str, version: str = K8S_VERSION) -> dict[str, Any]:
    """Validate part of an object, e.g. ``type_name="io.k8s.api.core.v1.PodSpec"``."""
    data = to_k8s_dict(obj)
    validator = jsonschema.Draft202012Validator(
        {"$ref": f"{DEFINITIONS_URI}#/$defs/{type_name}"}, registry=k8s_registry(version)
    )
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        raise AssertionError(_format(errors, f"{type_name} (Kubernetes {version})"))
    return data
