"""Entry point of graflow-checkpoint-s3 (filled by its issue)."""
