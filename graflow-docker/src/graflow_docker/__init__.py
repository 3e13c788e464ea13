"""graflow-docker."""
