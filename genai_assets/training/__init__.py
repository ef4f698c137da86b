"""The training entry point, runnable locally, in a Kubernetes pod or by hand."""
