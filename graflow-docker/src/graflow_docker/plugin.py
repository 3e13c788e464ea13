"""Entry point of graflow-docker (filled by its issue)."""
