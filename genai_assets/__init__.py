"""genai_assets: a Dagster code location for GenAI pipelines."""
