"""Entry point of graflow-redis (filled by its issue)."""
