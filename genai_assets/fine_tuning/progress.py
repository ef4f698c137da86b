"""Where a training run's progress and the libraries' warnings go (no dagster import).

Progress goes to a :class:`Reporter`: the Python log when run by hand, Dagster
Pipes when run by Dagster (one structured line per logged step, and the loss
curve as custom messages). Library warnings (transformers, peft, Python
``warnings``) go through :func:`library_logs_to` to the same logger at a chosen
level, so none lands in the captured stdout/stderr of a step or a pod.
"""

import json
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

logger = logging.getLogger("genai_assets.fine_tuning.sft")

# Loggers of the libraries training and evaluation run; "py.warnings" carries
# warnings.warn() once logging.captureWarnings is on.
LIBRARY_LOGGERS = ("transformers", "peft", "accelerate", "datasets", "torch", "py.warnings")


class _ForwardTo(logging.Handler):
    """Re-logs a library's record on ``target`` (a Dagster or Pipes logger) at its own level."""

    def __init__(self, target: logging.Logger) -> None:
        super().__init__()
        self._target = target

    def emit(self, record: logging.LogRecord) -> None:
        self._target.log(record.levelno, f"{record.name}: {record.getMessage()}")


@contextmanager
def library_logs_to(target: logging.Logger, level: int = logging.WARNING) -> Iterator[None]:
    """Within the block, send library log records and warnings at ``level`` and up to ``target``.

    Nothing of theirs is printed to stdout or stderr meanwhile: transformers'
    own stderr handler is set aside for the block and put back after it.
    Records below ``level`` are dropped by the level, not by a filter that
    would also drop errors.
    """
    from transformers.utils import logging as hf_logging

    hf_logging.get_logger()  # transformers adds its stderr handler on first use: now, not later
    handler = _ForwardTo(target)
    handler.setLevel(level)
    loggers = [logging.getLogger(name) for name in LIBRARY_LOGGERS]
    saved = [(lg, lg.handlers[:], lg.level, lg.propagate) for lg in loggers]
    # The warning filters stay as they are (a test's "error" filters included): only where
    # a shown warning is written changes.
    with warnings.catch_warnings():
        logging.captureWarnings(True)
        for lg in loggers:
            lg.handlers = [handler]
            lg.setLevel(level)
            lg.propagate = False
        try:
            yield
        finally:
            logging.captureWarnings(False)
            for lg, handlers, old_level, old_propagate in saved:
                lg.handlers = handlers
                lg.setLevel(old_level)
                lg.propagate = old_propagate


class Reporter:
    """Where progress goes: the Python log by default, Dagster Pipes when run by Dagster."""

    def log(self, message: str) -> None:
        """A line of progress."""
        logger.info(message)

    def step(self, values: dict[str, float]) -> None:
        """Loss (and learning rate) at one logged step."""
        logger.info("step %s", json.dumps(values))

    def finished(self, manifest: dict[str, Any]) -> None:
        """The run completed; ``manifest`` is what was written next to the model."""
        logger.info("finished: %s", json.dumps(manifest["training_metrics"]))


class PipesReporter(Reporter):
    """Reports through an open Dagster Pipes context."""

    def __init__(self, pipes: Any) -> None:
        self._pipes = pipes

    def log(self, message: str) -> None:
        """Sent to the Dagster run's log."""
        self._pipes.log.info(message)

    def step(self, values: dict[str, float]) -> None:
        """A log line per logged step and a custom message the asset collects as a curve."""
        self._pipes.log.info(f"step {int(values['step'])}: " + json.dumps(values))
        self._pipes.report_custom_message({"kind": "loss", **values})

    def finished(self, manifest: dict[str, Any]) -> None:
        """Final metrics and the model folder, as the asset's materialization metadata."""
        metrics = manifest["training_metrics"]
        meta: dict[str, Any] = {
            key: {"raw_value": value, "type": "float"}
            for key, value in metrics.items()
            if isinstance(value, float) and key != "loss_history"
        }
        meta["global_step"] = {"raw_value": int(metrics["global_step"]), "type": "int"}
        meta["model_dir"] = {"raw_value": manifest["model_dir"], "type": "path"}
        meta["artifact"] = {"raw_value": manifest["artifact"], "type": "text"}
        meta["device"] = {"raw_value": manifest["device"], "type": "text"}
        self._pipes.report_asset_materialization(metadata=meta)
