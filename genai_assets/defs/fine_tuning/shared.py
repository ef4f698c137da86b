"""What the fine-tuning assets share: their decorator, their failures and their metadata tables."""

from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path

import dagster as dg

from genai_assets.defs.automation.domains import FINE_TUNING_GROUP
from genai_assets.fine_tuning import eval_set, weights
from genai_assets.fine_tuning.dataset import QuarantinedRecord
from genai_assets.fine_tuning.gate import ModelGateDecision, ModelGateThresholds
from genai_assets.fine_tuning.training_job import sampled_loss_curve

OWNERS = ["team:ml-platform"]


def fine_tuning_asset(*, stage: str, **asset_arguments) -> Callable:
    """``@dg.asset`` in the fine-tuning group, owned by the ML platform team, tagged by stage.

    Everything that differs between the assets (kinds, code version, pool, retry
    policy, op tags) is still passed where each asset is defined; bump an asset's
    ``code_version`` when what it computes changes. Its docstring is its description.
    """
    return dg.asset(
        group_name=FINE_TUNING_GROUP, owners=OWNERS, tags={"stage": stage}, **asset_arguments
    )


def load_eval_set(path: str) -> eval_set.EvalSet:
    """The fixed evaluation set at ``path``; a missing or changed file fails without retries."""
    try:
        return eval_set.load_eval_set(path)
    except (OSError, ValueError) as error:
        raise dg.Failure(
            description=f"fixed evaluation set {path}: {error}",
            allow_retries=False,  # a missing or changed file stays so on retry
        ) from error


def verify_weights(folder: Path | str, expected: str, what: str, outcome: str = "") -> str:
    """``weights.verify``, failing the step (no retry: the files stay altered) on a mismatch.

    ``outcome`` says what the failure leaves as it is (e.g. the serving config).
    """
    try:
        return weights.verify(folder, expected, what)
    except weights.WeightsMismatch as error:
        raise dg.Failure(f"{error}{outcome}", allow_retries=False) from error


def quarantine_table(quarantined: Iterable[QuarantinedRecord]) -> dg.TableMetadataValue:
    """The quarantined lines as a table: source, line and reason."""
    return dg.MetadataValue.table(
        records=[
            dg.TableRecord({"source": q.source, "line": q.line, "reason": q.reason})
            for q in quarantined
        ],
        schema=dg.TableSchema(
            columns=[
                dg.TableColumn("source", "string"),
                dg.TableColumn("line", "int"),
                dg.TableColumn("reason", "string"),
            ]
        ),
    )


def loss_curve_table(history: list[dict]) -> dg.TableMetadataValue:
    """About 25 points of the loss history as a table (loss None: not finite)."""
    return dg.MetadataValue.table(
        records=[
            dg.TableRecord({"step": int(point["step"]), "loss": point["loss"]})
            for point in sampled_loss_curve(history)
        ],
        schema=dg.TableSchema(
            columns=[dg.TableColumn("step", "int"), dg.TableColumn("loss", "float")]
        ),
    )


def scores_table(results: dict[str, dict]) -> dg.TableMetadataValue:
    """One row per scored model (candidate, base, champion); perplexity None: not finite."""
    metrics = ("perplexity", "rouge_l", "bleu")
    return dg.MetadataValue.table(
        records=[
            dg.TableRecord({"model": name, **{m: result[m] for m in metrics}})
            for name, result in results.items()
        ],
        schema=dg.TableSchema(
            columns=[dg.TableColumn("model", "string")]
            + [dg.TableColumn(m, "float") for m in metrics]
        ),
    )


def gate_metadata(
    decision: ModelGateDecision, thresholds: ModelGateThresholds
) -> dict[str, dg.MetadataValue]:
    """The verdict, each margin to its threshold as a number, and the thresholds as text.

    Margins of a diverged candidate (None) are left out: there is no number to plot.
    """
    metadata: dict[str, dg.MetadataValue] = {
        "gate_passed": dg.MetadataValue.bool(decision.passed),
        # Configuration, not a measurement: text, so the UI does not plot a flat line.
        "gate_thresholds": dg.MetadataValue.text(
            ", ".join(f"{name}={value}" for name, value in asdict(thresholds).items())
        ),
    }
    for rule, margin in decision.margins.items():
        if margin is not None:
            metadata[f"gate_margin_{rule}"] = dg.MetadataValue.float(margin)
    return metadata
