"""The spec's import path for checkpoints: ``from graflow.core.checkpoint import CheckpointManager``."""

from graflow.checkpoint.manager import CheckpointManager
from graflow.checkpoint.metadata import CheckpointMetadata

__all__ = ["CheckpointManager", "CheckpointMetadata"]
