"""Fine-tuning logic: datasets, the tiny local model, evaluation, serving config (no dagster)."""
