"""Operations policy: the helpers asset decorators use, and the freshness applied in definitions.py.

Declared on each asset, where its reader sees them:

* Retries: an asset that calls an external service (an S3 or URL source, Qdrant,
  an LLM API) declares ``retry_policy=external_retry_policy()``: exponential
  backoff with jitter from ``GENAI_ASSETS_RETRY_MAX`` / ``_RETRY_DELAY_S``, and
  calls the service inside ``external_call(...)`` so that errors that can never
  succeed fail at once and a ``Retry-After`` is honoured.
* Pools: a step that opens Qdrant declares ``pool=QDRANT_POOL`` (local mode allows
  one process per path); LLM API steps ``LLM_POOL``; GPU training ``GPU_POOL``.
* GPUs: ``document_embeddings`` declares ``op_tags=embedding_op_tags()``: with
  ``GENAI_ASSETS_EMBEDDING_GPUS`` set, ``dagster-k8s/config`` tags that request
  that many GPUs (for the ``k8s_job_executor``) on the GPU nodes and image of
  ``genai_assets.deployment``.

These helpers read the environment when the decorator runs, that is when the code
server imports the asset modules while it loads the code location (each run worker
loads it again in its own environment). A retry policy, a pool and op tags are part
of the op's definition, which Dagster fixes at load; unlike resource config they
cannot be a ``dg.EnvVar`` resolved at launch, so the existing settings readers
(``genai_assets.settings``, which validate and name the variable) are
called here, and secrets stay ``dg.EnvVar`` on the resources.

Applied to the whole code location by definitions.py (``with_freshness_policies``):

* Freshness: ``document_embeddings``, ``rag_quality_metrics`` and ``serving_config``
  get a time-window freshness policy (windows from environment variables).
* Remediation: when one of them fails its freshness policy, it and its ancestors
  in the same group are requested once (``freshness_failed().newly_true()``),
  evaluated by ``freshness_remediation_sensor``.
"""

import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg

from genai_assets import deployment, settings
from genai_assets.automation.retries import (
    PermanentExternalError,
    TransientExternalError,
    classify_exception,
)
from genai_assets.fine_tuning.k8s import GpuPodSettings, k8s_op_tags

FRESHNESS_ASSETS = ("document_embeddings", "rag_quality_metrics", "serving_config")
REMEDIATION_TAG = "genai_assets/freshness_remediation"
QDRANT_POOL = "qdrant_local"
LLM_POOL = "llm_api"
GPU_POOL = "gpu_training"


def external_retry_policy() -> dg.RetryPolicy:
    """The shared retry policy: exponential backoff from the configured delay, with jitter."""
    retry = settings.retry_settings()
    return dg.RetryPolicy(
        max_retries=retry.attempts - 1,
        delay=retry.backoff_s,
        backoff=dg.Backoff.EXPONENTIAL,
        jitter=dg.Jitter.PLUS_MINUS,
    )


def embedding_op_tags() -> dict[str, Any]:
    """The op tags of document_embeddings: a GPU pod when the deployment asks for GPUs.

    Empty while ``GENAI_ASSETS_EMBEDDING_GPUS`` is 0 (the default): the step stays
    on the run's pod.
    """
    gpus = settings.embedding_gpus()
    if not gpus:
        return {}
    pod = GpuPodSettings(
        gpu_count=gpus,
        memory="16Gi",
        cpu="4",
        node_selector=deployment.gpu_node_selector(),
        tolerations=tuple(deployment.gpu_tolerations()),
        image=deployment.gpu_image(),
    )
    return k8s_op_tags(pod)


@contextmanager
def external_call(service: str) -> Iterator[None]:
    """Run an external call, turning its failure into the right Dagster outcome.

    * A permanent error (401/403, invalid request) raises ``dg.Failure`` with
      retries disallowed: the step fails at once.
    * A rate limit with ``Retry-After`` raises ``dg.RetryRequested`` that waits
      exactly that long (up to ``GENAI_ASSETS_RETRY_MAX_WAIT_S``).
    * Any other transient error propagates, so the step's retry policy backs
      off exponentially with jitter.

    Example:
        with external_call("document source"):
            check_response("document source", httpx.get(url))
    """
    try:
        yield
    except (dg.Failure, dg.RetryRequested):
        raise
    except Exception as error:
        classified = classify_exception(service, error)
        if isinstance(classified, PermanentExternalError):
            raise dg.Failure(
                description=f"{classified} - not retried: this error cannot succeed on retry",
                metadata={"service": service, "status": classified.status or 0},
                allow_retries=False,
            ) from error
        if isinstance(classified, TransientExternalError) and classified.retry_after_s is not None:
            retry = settings.retry_settings()
            if classified.retry_after_s > retry.max_wait_s:
                raise dg.Failure(
                    description=f"{classified} - the service asks to wait "
                    f"{classified.retry_after_s:.0f} s, more than GENAI_ASSETS_RETRY_MAX_WAIT_S "
                    f"({retry.max_wait_s:.0f} s); the next scheduled run tries again",
                    allow_retries=False,
                ) from error
            raise dg.RetryRequested(
                max_retries=retry.attempts - 1, seconds_to_wait=classified.retry_after_s
            ) from error
        if classified is not None and classified is not error:
            raise classified from error
        raise


def freshness_policy(asset_name: str) -> dg.FreshnessPolicy:
    """The time-window freshness policy of ``asset_name`` from the environment."""
    window = settings.freshness_window(asset_name)
    return dg.FreshnessPolicy.time_window(fail_window=window.fail, warn_window=window.warn)


def remediation_condition(stale_keys: list[dg.AssetKey]) -> dg.AutomationCondition:
    """True once when any of ``stale_keys`` newly fails its freshness policy, if not running."""
    conditions = [
        dg.AutomationCondition.asset_matches(
            key, dg.AutomationCondition.freshness_failed()
        ).newly_true()
        for key in sorted(stale_keys, key=lambda key: key.to_user_string())
    ]
    any_stale = conditions[0]
    for condition in conditions[1:]:
        any_stale = any_stale | condition
    return (any_stale & ~dg.AutomationCondition.in_progress()).with_label("freshness_remediation")


def _remediation_targets(defs: dg.Definitions, policy_keys: list[dg.AssetKey]) -> dict:
    """Each asset to refresh when a policy asset fails -> the policy assets it serves.

    An asset serves a policy asset when it is that asset or one of its ancestors
    in the same group: refreshing only the stale asset would re-publish old inputs.
    """
    graph = defs.resolve_asset_graph()
    targets: dict[dg.AssetKey, list[dg.AssetKey]] = {}
    for key in policy_keys:
        group = graph.get(key).group_name
        pending, seen = [key], {key}
        while pending:
            current = pending.pop()
            targets.setdefault(current, []).append(key)
            for parent in graph.get(current).parent_entity_keys:
                if not isinstance(parent, dg.AssetKey) or parent in seen or not graph.has(parent):
                    continue
                node = graph.get(parent)
                if node.group_name == group and node.is_materializable:
                    seen.add(parent)
                    pending.append(parent)
    return targets


def with_freshness_policies(defs: dg.Definitions) -> dg.Definitions:
    """``defs`` with freshness policies and remediation conditions (see the module docstring).

    Policies go on the FRESHNESS_ASSETS present in ``defs``; the remediation
    condition and tag on them and their same-group ancestors. Dagster's spec mapping
    returns a new definition object for every asset (unchanged outside the
    selection), so sensors and jobs select assets by key or group, never hold the
    asset object.
    """
    _require_each_asset_listed_once(defs)
    graph = defs.resolve_asset_graph()
    policy_keys = [dg.AssetKey(name) for name in FRESHNESS_ASSETS if graph.has(dg.AssetKey(name))]
    if not policy_keys:
        return defs
    policies = {key: freshness_policy(key.path[-1]) for key in policy_keys}
    targets = _remediation_targets(defs, policy_keys)

    def add_policy(spec: dg.AssetSpec) -> dg.AssetSpec:
        if spec.key in policies:
            spec = dg.apply_freshness_policy(spec, policies[spec.key], overwrite_existing=False)
        remediation = remediation_condition(targets[spec.key])
        return spec.replace_attributes(
            automation_condition=(
                spec.automation_condition | remediation
                if spec.automation_condition is not None
                else remediation
            ),
            tags={**spec.tags, REMEDIATION_TAG: "true"},
        )

    with warnings.catch_warnings():
        # Used on purpose (the public spec mapping that sees the resolved graph); its
        # preview warning would otherwise open every `dg launch`, `dg dev` and run log.
        warnings.filterwarnings(
            "ignore", message=".*map_resolved_asset_specs.*", category=dg.PreviewWarning
        )
        return defs.map_resolved_asset_specs(func=add_policy, selection=list(targets))


def _require_each_asset_listed_once(defs: dg.Definitions) -> None:
    """Fail clearly when a module under defs/ holds an asset object that another defines.

    The folder loader lists such an object twice; Dagster accepts that, but mapping
    specs turns the two entries into two definitions of one key.
    """
    counts = Counter(id(item) for item in defs.assets or [])
    twice = sorted(
        {
            key.to_user_string()
            for item in defs.assets or []
            if counts[id(item)] > 1 and isinstance(item, dg.AssetsDefinition)
            for key in item.keys
        }
    )
    if twice:
        raise dg.DagsterInvalidDefinitionError(
            f"asset(s) {', '.join(twice)} are imported into a second module under "
            "genai_assets/defs: import their module instead (import ... as ...) or select them "
            "by key, so that each asset object is listed once"
        )
