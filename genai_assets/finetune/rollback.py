"""Roll the serving config back to the previous model.

Usage: ``python -m genai_assets.finetune.rollback [--serving-dir DIR] [--reason TEXT]``.
The same logic runs in the ``rollback_serving_config`` Dagster job.
"""

import argparse
import json
import logging
import sys
from pathlib import Path

from genai_assets.finetune import paths, serving

logger = logging.getLogger("genai_assets.finetune.rollback")


def main(argv: list[str] | None = None) -> int:
    """Restore the previous serving entry; exit 1 with the reason when there is none."""
    parser = argparse.ArgumentParser(prog="python -m genai_assets.finetune.rollback")
    parser.add_argument("--serving-dir", type=Path, default=None, help="default: the local one")
    parser.add_argument("--reason", default="manual rollback from the command line")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    serving_dir = args.serving_dir or paths.serving_dir()
    try:
        restored = serving.rollback(serving_dir, reason=args.reason)
    except ValueError as error:
        logger.error("rollback failed: %s", error)
        return 1
    logger.info(
        "serving config in %s now serves version %s: %s",
        serving_dir,
        restored["version"],
        json.dumps(restored["vllm"]),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
