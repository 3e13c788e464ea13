"""graflow-redis."""
