"""Roll the serving config back to the previous model.

Usage: ``python -m genai_assets.fine_tuning.rollback [--serving-dir DIR] [--reason TEXT]``.
The same logic runs in the ``rollback_serving_config`` Dagster job. With
``MLFLOW_TRACKING_URI`` set, the registry alias ``champion`` moves back too
(credentials from MLflow's own variables, e.g. ``MLFLOW_TRACKING_TOKEN``).
"""

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from genai_assets.fine_tuning import paths, serving
from genai_assets.tracking.mlflow_tracker import (
    DEFAULT_REGISTERED_MODEL,
    MlflowSettings,
    MlflowTracker,
    ModelVersionRef,
    TrackingError,
)

logger = logging.getLogger("genai_assets.fine_tuning.rollback")


def main(argv: list[str] | None = None) -> int:
    """Restore the previous serving entry; exit 1 with the reason when there is none."""
    parser = argparse.ArgumentParser(prog="python -m genai_assets.fine_tuning.rollback")
    parser.add_argument("--serving-dir", type=Path, default=None, help="default: the local one")
    parser.add_argument("--reason", default="manual rollback from the command line")
    parser.add_argument("--registered-model", default=DEFAULT_REGISTERED_MODEL)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    serving_dir = args.serving_dir or paths.serving_dir()
    tracking_uri = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    tracker = MlflowTracker(MlflowSettings(tracking_uri)) if tracking_uri else None
    try:
        if tracker is not None:
            tracker.check_reachable()  # before the rollback: the alias must follow it
        restored = serving.rollback(serving_dir, reason=args.reason)
    except (ValueError, TrackingError) as error:
        logger.error("rollback failed: %s", error)
        return 1
    if tracker is not None:
        ref = ModelVersionRef.from_dict(restored.get("mlflow"))
        try:
            tracker.set_champion(args.registered_model, ref)
        except TrackingError as error:
            logger.error(
                "serving config rolled back to version %s, but the MLflow alias champion did "
                "not follow: %s",
                restored["version"],
                error,
            )
            return 1
        logger.info("MLflow alias champion -> %s", f"version {ref.version}" if ref else "removed")
    logger.info(
        "serving config in %s now serves version %s: %s",
        serving_dir,
        restored["version"],
        json.dumps(restored["vllm"]),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
