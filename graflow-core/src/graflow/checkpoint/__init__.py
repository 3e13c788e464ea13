"""Checkpoints: save a run from inside a task or from host code, and resume it in another process.

Spec section 9. The store for a path is picked by its scheme from the plugins (``file`` built in).
"""

from graflow.checkpoint.local import LocalCheckpointStore
from graflow.checkpoint.manager import CheckpointManager
from graflow.checkpoint.metadata import CheckpointMetadata
from graflow.checkpoint.store import CheckpointStore

__all__ = ["CheckpointManager", "CheckpointMetadata", "CheckpointStore", "LocalCheckpointStore"]
