"""Which resources the code location binds, decided by the environment.

``GENAI_ASSETS_ENV`` (``local`` by default, or ``production``) is read when the
definitions load, in ``genai_assets.settings.environment``; secrets are
``dg.EnvVar`` references resolved at run time and hidden in the UI.
``GENAI_ASSETS_DOCUMENT_SOURCES`` (comma-separated folders, globs, URLs or
s3:// prefixes), also read at load, replaces the default document sources.
"""

import os

import dagster as dg
from dagster_aws.s3 import S3Resource

from genai_assets import deployment, settings
from genai_assets.io_managers import LocalFormatIOManager, S3FormatIOManager
from genai_assets.resources.document_store import LocalDocumentStore, S3DocumentStore
from genai_assets.resources.documents import DocumentSourcesResource
from genai_assets.resources.embeddings import SentenceTransformerResource
from genai_assets.resources.mlflow_tracking import MlflowTrackingResource
from genai_assets.resources.openai_api import OpenAICompatibleResource
from genai_assets.resources.prometheus import PushgatewayResource
from genai_assets.resources.prompt_source import PromptSourceResource
from genai_assets.resources.qdrant import QdrantResource
from genai_assets.resources.training_runner import TrainingRunnerResource

DOCUMENT_SOURCES_VARIABLE = "GENAI_ASSETS_DOCUMENT_SOURCES"


def document_sources_from_env() -> list[str]:
    """The sources named by $GENAI_ASSETS_DOCUMENT_SOURCES (comma-separated); [] if unset."""
    value = os.environ.get(DOCUMENT_SOURCES_VARIABLE, "")
    return [source.strip() for source in value.split(",") if source.strip()]


S3_BUCKET_VARIABLE = "GENAI_ASSETS_S3_BUCKET"


def _optional_secret(name: str) -> dg.EnvVar | None:
    # An unset EnvVar fails at launch, so bind it only when the variable exists.
    return dg.EnvVar(name) if name in os.environ else None


def storage_resources(environment: str) -> dict[str, object]:
    """The ``s3``, ``io_manager`` and ``document_store`` resources for ``environment``.

    ``s3`` (dagster-aws ``S3Resource``) is bound in both environments, for assets
    that read S3 sources: ``GENAI_ASSETS_S3_ENDPOINT_URL`` (S3-compatible
    stores) and ``AWS_REGION`` configure it; credentials are
    ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` (``dg.EnvVar``) when set,
    else boto3's default chain (e.g. the pod's IAM role).

    ``document_store`` (raw_documents' texts) follows the same choice. The
    ``io_manager`` stores asset values as files under
    ``$DAGSTER_HOME/storage/assets`` locally, and in production as objects in
    the bucket ``GENAI_ASSETS_S3_BUCKET`` (required) under
    ``GENAI_ASSETS_S3_PREFIX``; ``GENAI_ASSETS_S3_CREATE_BUCKET=true`` creates a
    missing bucket instead of failing.
    """
    s3 = S3Resource(
        endpoint_url=dg.EnvVar("GENAI_ASSETS_S3_ENDPOINT_URL").get_value() or None,
        region_name=(
            dg.EnvVar("AWS_REGION").get_value() or dg.EnvVar("AWS_DEFAULT_REGION").get_value()
        )
        or None,
        aws_access_key_id=_optional_secret("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=_optional_secret("AWS_SECRET_ACCESS_KEY"),
        aws_session_token=_optional_secret("AWS_SESSION_TOKEN"),
    )
    if environment != "production":
        return {
            "s3": s3,
            "io_manager": LocalFormatIOManager(),
            "document_store": LocalDocumentStore(),
        }
    bucket = dg.EnvVar(S3_BUCKET_VARIABLE).get_value()
    if not bucket:
        raise ValueError(
            f"{settings.ENVIRONMENT_VARIABLE}=production stores asset values in S3 and needs"
            f" {S3_BUCKET_VARIABLE} (the bucket name); set it, or run with"
            f" {settings.ENVIRONMENT_VARIABLE}=local"
        )
    create_bucket = (
        dg.EnvVar("GENAI_ASSETS_S3_CREATE_BUCKET").get_value() or "false"
    ).strip().lower() in ("1", "true", "yes")
    prefix = dg.EnvVar("GENAI_ASSETS_S3_PREFIX").get_value() or "genai_assets"
    return {
        "s3": s3,
        "io_manager": S3FormatIOManager(
            s3=s3, bucket=bucket, prefix=prefix, create_bucket=create_bucket
        ),
        # Document texts go to the same bucket: raw_documents and document_embeddings
        # may run in different pods.
        "document_store": S3DocumentStore(
            s3=s3,
            bucket=bucket,
            prefix=f"{prefix.strip('/')}/document_snapshots",
            create_bucket=create_bucket,
        ),
    }


def build_resources(environment: str) -> dict[str, object]:
    """The resource dictionary for ``environment`` (``local`` or ``production``)."""
    resources: dict[str, object] = {
        "document_sources": DocumentSourcesResource(sources=document_sources_from_env()),
        "embedder": SentenceTransformerResource(),
        "qdrant": QdrantResource(
            url=dg.EnvVar("QDRANT_URL").get_value() or None,
            api_key=dg.EnvVar("QDRANT_API_KEY") if "QDRANT_API_KEY" in os.environ else None,
        ),
        "llm": OpenAICompatibleResource(
            base_url=dg.EnvVar("OPENAI_BASE_URL").get_value() or None,
            model=dg.EnvVar("OPENAI_MODEL").get_value() or None,
            # An unset EnvVar fails at launch, so bind it only when the key exists.
            api_key=dg.EnvVar("OPENAI_API_KEY") if "OPENAI_API_KEY" in os.environ else None,
        ),
    }
    # "s3", "io_manager" and "document_store": local files, or S3 in production.
    resources.update(storage_resources(environment))
    # Batch inference input files: a local folder, or s3://bucket/prefix (read with "s3").
    resources["batch_prompts"] = PromptSourceResource(
        location=dg.EnvVar("BATCH_PROMPTS_LOCATION").get_value()
        or str(settings.PACKAGE_DATA / "prompts"),
        s3=resources["s3"],
    )
    # Fine-tuning: training runs as a local subprocess, or in production as a Kubernetes
    # GPU pod through dagster-k8s Pipes (image and artifact volume from the environment).
    if environment == "production":
        resources["training_runner"] = TrainingRunnerResource(
            backend="kubernetes",
            image=dg.EnvVar("TRAINING_IMAGE").get_value() or None,
            namespace=dg.EnvVar("TRAINING_NAMESPACE").get_value() or "default",
            artifact_volume_claim=dg.EnvVar("TRAINING_ARTIFACT_PVC").get_value() or None,
            artifact_mount_path=dg.EnvVar("FINE_TUNING_ROOT").get_value() or None,
            # The same GPU nodes as every other GPU pod of the deployment.
            node_selector=deployment.gpu_node_selector(),
            tolerations=deployment.gpu_tolerations(),
        )
    else:
        resources["training_runner"] = TrainingRunnerResource()
    resources.update(observability_resources())
    return resources


def observability_resources() -> dict[str, object]:
    """``mlflow`` and ``prometheus``, each off unless its URL is set; secrets through dg.EnvVar.

    ``mlflow``: ``MLFLOW_TRACKING_URI`` (and ``MLFLOW_TRACKING_USERNAME``/``_PASSWORD``
    or ``_TOKEN``); ``GENAI_ASSETS_MLFLOW_ON_FAILURE=warn`` makes recording best
    effort (the materialization then says what was not recorded); the default
    fails the step. ``prometheus``: ``PROMETHEUS_PUSHGATEWAY_URL`` (and
    ``PROMETHEUS_PUSHGATEWAY_USERNAME``/``_PASSWORD``), used by metrics_push_sensor.
    """
    return {
        "prometheus": PushgatewayResource(
            url=dg.EnvVar("PROMETHEUS_PUSHGATEWAY_URL").get_value() or None,
            username=_optional_secret("PROMETHEUS_PUSHGATEWAY_USERNAME"),
            password=_optional_secret("PROMETHEUS_PUSHGATEWAY_PASSWORD"),
        ),
        "mlflow": MlflowTrackingResource(
            tracking_uri=dg.EnvVar("MLFLOW_TRACKING_URI").get_value() or None,
            registry_uri=dg.EnvVar("MLFLOW_REGISTRY_URI").get_value() or None,
            username=_optional_secret("MLFLOW_TRACKING_USERNAME"),
            password=_optional_secret("MLFLOW_TRACKING_PASSWORD"),
            token=_optional_secret("MLFLOW_TRACKING_TOKEN"),
            on_failure=dg.EnvVar("GENAI_ASSETS_MLFLOW_ON_FAILURE").get_value() or "fail",
        ),
    }


@dg.definitions
def resources() -> dg.Definitions:
    """Resources for the environment named by $GENAI_ASSETS_ENV."""
    return dg.Definitions(resources=build_resources(settings.environment()))
