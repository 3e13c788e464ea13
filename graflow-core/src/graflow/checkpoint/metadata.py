"""Checkpoint metadata (placeholder: the checkpoint issue fills this in)."""

from __future__ import annotations

import attrs


@attrs.frozen
class CheckpointMetadata:
    checkpoint_id: str
    session_id: str
