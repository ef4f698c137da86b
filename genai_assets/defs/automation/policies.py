"""Cross-cutting operations policy, applied to the whole code location in definitions.py.

* Freshness: ``document_embeddings``, ``rag_quality_metrics`` and ``serving_config``
  get a time-window freshness policy (windows from environment variables).
* Remediation: when one of them fails its freshness policy, it and its ancestors
  in the same group are requested once (``freshness_failed().newly_true()``),
  evaluated by ``freshness_remediation_sensor``.
* Retries: every step that calls an external service (kinds such as ``openai``,
  ``s3``, ``qdrant``, ``http``, the tag ``genai_assets/external``, or a resource
  such as ``llm``, ``qdrant``, ``document_sources``) gets the shared retry
  policy, exponential backoff with jitter, unless it has its own.
* Pools: steps that open Qdrant (local mode allows one process per path) run in
  the ``qdrant_local`` pool unless they name a pool.
* GPUs: with ``GENAI_ASSETS_EMBEDDING_GPUS`` set, ``document_embeddings`` carries
  ``dagster-k8s/config`` op tags that request that many GPUs (for the
  ``k8s_job_executor``), on the GPU nodes and image of ``genai_assets.deployment``.

Assets call external services inside ``external_call(...)`` so that errors that
can never succeed fail at once and a ``Retry-After`` is honoured.
"""

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg
from dagster._core.definitions.op_definition import OpDefinition
from dagster._record import replace

from genai_assets import deployment
from genai_assets.automation import settings as ops_settings
from genai_assets.automation.retries import (
    PermanentExternalError,
    TransientExternalError,
    classify_exception,
)
from genai_assets.finetune.k8s import GpuPodSettings, k8s_op_tags

logger = logging.getLogger(__name__)

FRESHNESS_ASSETS = ("document_embeddings", "rag_quality_metrics", "serving_config")
EXTERNAL_KINDS = frozenset({"openai", "s3", "qdrant", "http", "api", "llm"})
# Resources that reach services outside the step: a step that uses one is external.
EXTERNAL_RESOURCE_KEYS = frozenset({"document_sources", "document_store", "qdrant", "llm", "s3"})
EXTERNAL_TAG = "genai_assets/external"
REMEDIATION_TAG = "genai_assets/freshness_remediation"
QDRANT_POOL = "qdrant_local"
LLM_POOL = "llm_api"
GPU_POOL = "gpu_training"
EMBEDDING_STEP = "document_embeddings"


def external_retry_policy() -> dg.RetryPolicy:
    """The shared retry policy: exponential backoff from the configured delay, with jitter."""
    retry = ops_settings.retry_settings()
    return dg.RetryPolicy(
        max_retries=retry.max_retries,
        delay=retry.delay_s,
        backoff=dg.Backoff.EXPONENTIAL,
        jitter=dg.Jitter.PLUS_MINUS,
    )


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
            retry = ops_settings.retry_settings()
            if classified.retry_after_s > retry.max_wait_s:
                raise dg.Failure(
                    description=f"{classified} - the service asks to wait "
                    f"{classified.retry_after_s:.0f} s, more than GENAI_ASSETS_RETRY_MAX_WAIT_S "
                    f"({retry.max_wait_s:.0f} s); the next scheduled run tries again",
                    allow_retries=False,
                ) from error
            raise dg.RetryRequested(
                max_retries=retry.max_retries, seconds_to_wait=classified.retry_after_s
            ) from error
        if classified is not None and classified is not error:
            raise classified from error
        raise


def freshness_policy(asset_name: str) -> dg.FreshnessPolicy:
    """The time-window freshness policy of ``asset_name`` from the environment."""
    window = ops_settings.freshness_window(asset_name)
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


def freshness_spec_mapper(defs: dg.Definitions) -> Callable[[dg.AssetSpec], dg.AssetSpec]:
    """A spec mapping that adds freshness policies and remediation conditions.

    Policies go on the FRESHNESS_ASSETS present in ``defs``; the remediation
    condition and tag on them and their same-group ancestors.
    """
    present = {spec.key for spec in _specs(defs)}
    policy_keys = [dg.AssetKey(name) for name in FRESHNESS_ASSETS if dg.AssetKey(name) in present]
    policies = {key: freshness_policy(key.path[-1]) for key in policy_keys}
    targets = _remediation_targets(defs, policy_keys) if policy_keys else {}

    def add_policy(spec: dg.AssetSpec) -> dg.AssetSpec:
        attributes: dict = {}
        if spec.key in policies and spec.freshness_policy is None:
            attributes["freshness_policy"] = policies[spec.key]
        if spec.key in targets:
            remediation = remediation_condition(targets[spec.key])
            attributes["automation_condition"] = (
                spec.automation_condition | remediation
                if spec.automation_condition is not None
                else remediation
            )
            attributes["tags"] = {**spec.tags, REMEDIATION_TAG: "true"}
        return spec.replace_attributes(**attributes) if attributes else spec

    return add_policy


def _specs(defs: dg.Definitions) -> Iterator[dg.AssetSpec]:
    for item in defs.assets or []:
        if isinstance(item, dg.AssetSpec):
            yield item
        elif isinstance(item, dg.AssetsDefinition):
            yield from item.specs


def calls_external_service(assets_def: dg.AssetsDefinition) -> bool:
    """Whether ``assets_def`` calls an external service: by kind, tag or resource used."""
    if assets_def.required_resource_keys & EXTERNAL_RESOURCE_KEYS:
        return True
    for spec in assets_def.specs:
        if spec.kinds & EXTERNAL_KINDS or spec.tags.get(EXTERNAL_TAG) == "true":
            return True
    return False


def gpu_step_op_tags() -> dict[str, dict[str, Any]]:
    """Op name -> the ``dagster-k8s/config`` tags of steps the deployment puts on GPUs."""
    gpus = ops_settings.embedding_gpus()
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
    return {EMBEDDING_STEP: k8s_op_tags(pod)}


def _with_op_policy(
    assets_def: dg.AssetsDefinition,
    retry_policy: dg.RetryPolicy,
    op_tags: dict[str, Any] | None = None,
) -> dg.AssetsDefinition:
    """``assets_def`` with the shared retry policy, the Qdrant pool and ``op_tags`` added."""
    node = assets_def.node_def if assets_def.is_executable else None
    if not isinstance(node, OpDefinition):
        return assets_def  # graph-backed or external assets: their ops carry their own policy
    external = calls_external_service(assets_def)
    uses_qdrant = any("qdrant" in spec.kinds for spec in assets_def.specs)
    new_retry = node.retry_policy or (retry_policy if external else None)
    new_pool = node.pool or (QDRANT_POOL if uses_qdrant else None)
    if new_retry is node.retry_policy and new_pool == node.pool and not op_tags:
        return assets_def
    # Dagster has no public way to change an op's retry policy or pool after the
    # decorator ran; rebuild the op with the same function, ins, outs and config.
    new_node = OpDefinition.dagster_internal_init(
        compute_fn=node.compute_fn,
        name=node.name,
        ins={d.name: dg.In.from_definition(d) for d in node.input_defs},
        outs={d.name: dg.Out.from_definition(d) for d in node.output_defs},
        description=node.description,
        config_schema=node.config_schema,
        required_resource_keys=node.required_resource_keys,
        tags={**node.tags, **(op_tags or {})},
        version=None,
        retry_policy=new_retry,
        code_version=node.version,
        pool=new_pool,
    )
    attributes = assets_def.get_attributes_dict()
    attributes["node_def"] = new_node
    return dg.AssetsDefinition.dagster_internal_init(**attributes)


def _assets_targeted_as_objects(defs: dg.Definitions) -> dict[int, str]:
    """Assets that a sensor or schedule holds as objects (``target=[asset]``) -> who holds them."""
    pinned: dict[int, str] = {}
    for instigator in [*(defs.sensors or []), *(defs.schedules or [])]:
        targets = list(getattr(instigator, "targets", None) or [])
        if getattr(instigator, "target", None) is not None and not targets:
            targets = [instigator.target]
        for target in targets:
            for assets_def in getattr(target, "assets_defs", None) or []:
                pinned[id(assets_def)] = f"{type(instigator).__name__} {instigator.name!r}"
    return pinned


def apply_operations_policy(defs: dg.Definitions) -> dg.Definitions:
    """Freshness, remediation, retries, pools and GPU op tags for the whole code location."""
    add_policy = freshness_spec_mapper(defs)
    retry_policy = external_retry_policy()
    gpu_tags = gpu_step_op_tags()
    pinned = _assets_targeted_as_objects(defs)
    # The same object may be listed twice (load_defs finds it in two modules): map it once.
    mapped: dict[int, object] = {}
    for item in defs.assets or []:
        if id(item) in mapped:
            continue
        if id(item) in pinned:
            # A new object would clash with the one the instigator holds.
            logger.warning(
                f"{pinned[id(item)]} targets asset(s) "
                f"{', '.join(key.to_user_string() for key in item.keys)} as an object, so the "
                "operations policy (freshness, retries, pools) is not applied to them; target "
                "them with dg.AssetSelection.assets(...) instead"
            )
            mapped[id(item)] = item
        elif isinstance(item, dg.AssetsDefinition):
            op_tags = gpu_tags.get(item.node_def.name) if item.is_executable else None
            mapped[id(item)] = _with_op_policy(
                dg.map_asset_specs(add_policy, [item])[0], retry_policy, op_tags
            )
        elif isinstance(item, dg.AssetSpec):
            mapped[id(item)] = add_policy(item)
        else:
            mapped[id(item)] = item
    return replace(defs, assets=list(mapped.values()))
