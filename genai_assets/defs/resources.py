"""Which resources the code location binds, decided by the environment.

``GENAI_ASSETS_ENV`` (``local`` by default, or ``production``) is read when the
definitions load, in ``genai_assets.settings.environment``; secrets are
``dg.EnvVar`` references resolved at run time and hidden in the UI.
"""

import os

import dagster as dg

from genai_assets import settings
from genai_assets.resources.openai_api import OpenAICompatibleResource
from genai_assets.resources.training_runner import TrainingRunnerResource


def build_resources(environment: str) -> dict[str, object]:
    """The resource dictionary for ``environment`` (``local`` or ``production``)."""
    resources: dict[str, object] = {
        "llm": OpenAICompatibleResource(
            base_url=dg.EnvVar("OPENAI_BASE_URL").get_value() or None,
            model=dg.EnvVar("OPENAI_MODEL").get_value() or None,
            # An unset EnvVar fails at launch, so bind it only when the key exists.
            api_key=dg.EnvVar("OPENAI_API_KEY") if "OPENAI_API_KEY" in os.environ else None,
        ),
    }
    # Fine-tuning: training runs as a local subprocess, or in production as a Kubernetes
    # GPU pod through dagster-k8s Pipes (image and artifact volume from the environment).
    if environment == "production":
        resources["training_runner"] = TrainingRunnerResource(
            backend="kubernetes",
            image=dg.EnvVar("TRAINING_IMAGE").get_value() or None,
            namespace=dg.EnvVar("TRAINING_NAMESPACE").get_value() or "default",
            artifact_volume_claim=dg.EnvVar("TRAINING_ARTIFACT_PVC").get_value() or None,
            artifact_mount_path=dg.EnvVar("FINE_TUNING_ROOT").get_value() or None,
        )
    else:
        resources["training_runner"] = TrainingRunnerResource()
    return resources


@dg.definitions
def resources() -> dg.Definitions:
    """Resources for the environment named by $GENAI_ASSETS_ENV."""
    return dg.Definitions(resources=build_resources(settings.environment()))
