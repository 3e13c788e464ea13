"""graflow-checkpoint-s3."""
