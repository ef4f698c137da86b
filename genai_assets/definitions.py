"""The genai_assets code location.

Loads every definition under ``genai_assets/defs`` (one folder per domain, plus
the resources) and applies cross-cutting policy: freshness policies and their
remediation, the retry policy of steps that call external services, and pools
(see ``genai_assets.defs.automation.policies``); it adds the per-domain asset
jobs that no domain defined itself. Nothing else happens at import.
"""

import dagster as dg

import genai_assets.defs
from genai_assets.defs.automation.jobs import add_missing_domain_jobs
from genai_assets.defs.automation.policies import apply_operations_policy


@dg.definitions
def defs() -> dg.Definitions:
    """The code location's definitions: every module under ``genai_assets.defs``, with policy."""
    loaded = dg.load_defs(defs_root=genai_assets.defs)
    return apply_operations_policy(add_missing_domain_jobs(loaded))
