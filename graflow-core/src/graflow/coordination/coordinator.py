"""Upstream Graflow 0.2's import path for ``CoordinationBackend`` (issue 12: drop-in compatibility)."""

from graflow.coordination.base import CoordinationBackend

__all__ = ["CoordinationBackend"]
