"""Experiment tracking (MLflow) and pipeline metrics (Prometheus); no dagster import."""
