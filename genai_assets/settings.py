"""Where the project keeps local state, and which environment it runs in.

Read at run time (never at import) so that tests and deployments can set the
environment variables before anything is resolved.
"""

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DATA = Path(__file__).resolve().parent / "data"
SAMPLE_CORPUS_DIR = PACKAGE_DATA / "sample_corpus"

ENVIRONMENT_VARIABLE = "GENAI_ASSETS_ENV"
ENVIRONMENTS = ("local", "production")


def dagster_home() -> Path:
    """The instance folder: $DAGSTER_HOME, else ``.dagster_home`` in the checkout."""
    configured = os.environ.get("DAGSTER_HOME")
    return Path(configured) if configured else PROJECT_ROOT / ".dagster_home"


def storage_root() -> Path:
    """Root of local artifacts (IO manager outputs, Qdrant local storage, snapshots)."""
    return dagster_home() / "storage"


def environment() -> str:
    """``local`` (the default) or ``production``, from $GENAI_ASSETS_ENV."""
    value = os.environ.get(ENVIRONMENT_VARIABLE, "local").strip().lower() or "local"
    if value not in ENVIRONMENTS:
        raise ValueError(
            f"{ENVIRONMENT_VARIABLE}={value!r} is not one of {', '.join(ENVIRONMENTS)}"
        )
    return value
