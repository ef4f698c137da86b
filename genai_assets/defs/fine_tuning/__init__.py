"""Fine-tuning wiring: assets, the promotion gate check and the rollback job."""
