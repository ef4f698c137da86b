"""The genai_assets code location.

Loads every definition under ``genai_assets/defs`` (one folder per domain, each
with its assets, checks and job, plus automation and the resources) and applies
the cross-cutting freshness policies and their remediation
(``genai_assets.defs.automation.policies``). Retry policies, pools and op tags are
declared on each asset. Nothing else happens at import.
"""

from pathlib import Path

import dagster as dg

from genai_assets.defs.automation.policies import with_freshness_policies


@dg.definitions
def defs() -> dg.Definitions:
    """The code location's definitions: every module under ``genai_assets.defs``, with policy."""
    # The project's pyproject.toml ([tool.dg.project]) names the defs module; it sits
    # beside this package in a checkout and in the image (see the Dockerfile).
    loaded = dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
    return with_freshness_policies(loaded)
