"""Local file checkpoint store (placeholder: the checkpoint issue fills this in)."""

from __future__ import annotations

from graflow.checkpoint.store import CheckpointStore


class LocalCheckpointStore(CheckpointStore):
    """Checkpoints as files on a local or mounted filesystem."""
