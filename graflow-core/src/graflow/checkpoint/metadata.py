"""CheckpointMetadata: what a checkpoint's ``.meta.json`` says about it, as a value."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import attrs


@attrs.frozen
class CheckpointMetadata:
    """One checkpoint: which run, how far it got, where it lives, and the caller's own metadata.

    Returned by ``create_checkpoint``, ``resume_from_checkpoint`` and ``list_checkpoints``; built
    from the meta file by :mod:`graflow.checkpoint.codec`, never by hand.
    """

    checkpoint_id: str
    session_id: str
    created_at: datetime  # timezone-aware UTC
    steps: int
    path: str
    start_nodes: tuple[str, ...] = ()
    backend: dict[str, str] = attrs.field(factory=dict)
    user_metadata: dict[str, Any] = attrs.field(factory=dict)
    resumes_current_task: bool = False  # an immediate checkpoint: the task that took it runs again
    schema_version: int = 1

    @property
    def start_node(self) -> str | None:
        """The first start node (the spec's meta has one)."""
        return self.start_nodes[0] if self.start_nodes else None
