"""The serving stage: serving_config, the promotion of a candidate that passed the gate."""

from pathlib import Path

import dagster as dg

from genai_assets.defs.fine_tuning.configs import ServingConfigConfig
from genai_assets.defs.fine_tuning.evaluation import METRICS
from genai_assets.defs.fine_tuning.shared import fine_tuning_asset, verify_weights
from genai_assets.fine_tuning import paths, serving
from genai_assets.fine_tuning.gate import ModelGateThresholds, decide_promotion
from genai_assets.resources.mlflow_tracking import MlflowTrackingResource


def _serving_value(serving_dir: Path, entry: dict) -> dict:
    return {
        **entry,
        "config_path": str(serving_dir / serving.VLLM_CONFIG),
        "state_path": str(serving_dir / serving.STATE),
    }


@fine_tuning_asset(
    stage="serving",
    code_version="2",
    kinds={"yaml"},
    output_required=False,  # a refused first promotion has no config in effect to record
)
def serving_config(
    context: dg.AssetExecutionContext,
    config: ServingConfigConfig,
    mlflow: MlflowTrackingResource,
    eval_report: dict,
):
    """Promote the candidate: write vllm_serve.yaml and the serving state.

    The vLLM serve config of the promoted model. Promotes the candidate only when the
    promotion gate passed, its weights still hash to what eval_report evaluated, and the
    champion it was judged against is still the one serving (compare-and-swap, under the
    serving lock); both serving files change in one atomic step, previous configs are kept
    (rollback: the rollback_serving_config job). A refused promotion leaves serving
    untouched and records the config in effect, with the reason.
    """
    serving_dir = paths.serving_dir()
    decision = decide_promotion(
        eval_report["candidate"],
        eval_report["champion"],
        ModelGateThresholds(**eval_report["gate_thresholds"]),
        same_weights=eval_report["same_weights"],
    )
    if not decision.passed:  # an expected outcome: the run stays green, serving untouched
        refused = decision.failures()
        current = serving.current_entry(serving_dir)
        context.log.info("not promoted, the serving config is unchanged: " + "; ".join(refused))
        if current is None:
            return  # nothing serves yet, so there is no config in effect to record
        yield dg.Output(
            {**_serving_value(serving_dir, current), "promoted": False, "refused": refused},
            metadata={
                "promoted": dg.MetadataValue.bool(False),
                "reason": "; ".join(refused),
                "version": dg.MetadataValue.int(current["version"]),
                "model_dir": dg.MetadataValue.path(current["model_dir"]),
            },
        )
        return
    candidate = eval_report["candidate_model"]
    model_dir = Path(candidate["path"])
    # Promote exactly the weights that were evaluated.
    verify_weights(
        model_dir,
        eval_report["candidate_weights_sha256"],
        "eval_report",
        outcome="; not promoted, the serving config is unchanged",
    )
    vllm = serving.build_vllm_config(
        model_dir=str(model_dir),
        artifact=candidate["artifact"],
        base_model=candidate["base_model"],
        served_model_name=config.served_model_name,
        max_model_len=config.max_model_len
        or serving.context_length(model_dir, candidate["base_model"]),
        dtype=config.dtype,
        tensor_parallel_size=config.tensor_parallel_size,
    )
    # The registry alias must follow the promotion: check MLflow answers before promoting.
    mlflow.check_reachable(context, "the champion alias")
    try:
        entry = serving.promote(
            serving_dir,
            {
                "model_dir": str(model_dir),
                "manifest_path": candidate["manifest_path"],
                "artifact": candidate["artifact"],
                "weights_sha256": eval_report["candidate_weights_sha256"],
                "eval_set": eval_report["eval_set"],
                "served_model_name": config.served_model_name,
                "vllm": vllm,
                "metrics": {
                    name: {m: eval_report[name][m] for m in METRICS}
                    for name in ("candidate", "champion", "base")
                },
                "replaced": eval_report["champion_source"],
                "run_id": context.run.run_id,
                "mlflow": candidate.get("mlflow"),  # kept so a rollback can move the alias back
            },
            expected_version=eval_report["champion_version"],
        )
    except serving.ServingConflict as error:
        raise dg.Failure(str(error), allow_retries=False) from error
    config_path = serving_dir / serving.VLLM_CONFIG
    yield dg.Output(
        {**_serving_value(serving_dir, entry), "promoted": True},
        metadata={
            "promoted": dg.MetadataValue.bool(True),
            "version": dg.MetadataValue.int(entry["version"]),
            "model_dir": dg.MetadataValue.path(str(model_dir)),
            "weights_sha256": entry["weights_sha256"],
            "config_path": dg.MetadataValue.path(str(config_path)),
            "vllm_serve.yaml": dg.MetadataValue.md(
                f"```yaml\n{config_path.read_text()}```\n"
                f"`vllm serve --config {config_path}`; locally: "
                f"`transformers serve {model_dir} --device cpu`"
            ),
            **mlflow.record_serving(context, entry.get("mlflow")),
        },
    )
