"""Library warnings go to the run's logger at the chosen level, never to stdout or stderr."""

import logging
import warnings

from transformers.utils import logging as hf_logging

from genai_assets.fine_tuning.progress import library_logs_to


class Collect(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records = []

    def emit(self, record):
        self.records.append(record)


def test_library_warnings_reach_the_target_logger_and_not_the_terminal(capfd):
    target = logging.getLogger("test.fine_tuning.progress")
    target.propagate = False
    collected = Collect()
    target.addHandler(collected)
    before = list(logging.getLogger("transformers").handlers)
    with library_logs_to(target, logging.WARNING):
        hf_logging.get_logger("transformers.trainer").warning("a transformers warning")
        hf_logging.get_logger("transformers.trainer").info("a transformers info line")
        warnings.warn("a python warning", UserWarning, stacklevel=1)
        logging.getLogger("peft.tuners").error("a peft error")
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")
    seen = [(r.levelno, r.getMessage()) for r in collected.records]
    assert (logging.WARNING, "transformers.trainer: a transformers warning") in seen
    assert (logging.ERROR, "peft.tuners: a peft error") in seen
    assert any("a python warning" in message for _, message in seen)
    assert not any("info line" in message for _, message in seen)  # below the level
    # After the block the libraries log as they did before: nothing forwarded any more.
    assert logging.getLogger("transformers").handlers == before
    hf_logging.get_logger("transformers.trainer").warning("after the block")
    assert not any("after the block" in r.getMessage() for r in collected.records)
