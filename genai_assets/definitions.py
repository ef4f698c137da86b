"""The genai_assets code location.

Loads every definition under ``genai_assets/defs`` (one folder per domain, plus
the resources) and applies cross-cutting policy. Nothing else happens at import.
"""

import dagster as dg

import genai_assets.defs


@dg.definitions
def defs() -> dg.Definitions:
    """The code location's definitions: every module under ``genai_assets.defs``."""
    return dg.load_defs(defs_root=genai_assets.defs)
