"""CheckpointManager (placeholder: the checkpoint issue fills this in)."""

from __future__ import annotations

from typing import Any

from graflow.exceptions import CheckpointError


class CheckpointManager:
    @classmethod
    def create_checkpoint(cls, context: Any, **kwargs: Any) -> tuple[str, Any]:
        raise CheckpointError("checkpoints are not implemented yet")
