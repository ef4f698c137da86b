"""Fine-tuning wiring: assets, the promotion gate check, fine_tuning_job and the rollback job."""
