"""Dagster wiring only, one folder per domain; loaded by ``genai_assets.definitions``."""
