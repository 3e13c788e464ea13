"""The checkpoint store contract (placeholder: the checkpoint issue fills this in)."""

from __future__ import annotations

from abc import ABC


class CheckpointStore(ABC):
    """Where checkpoint files live, chosen by the path's URL scheme."""
