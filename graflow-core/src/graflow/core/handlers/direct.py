"""Upstream Graflow 0.2's import path for ``DirectTaskHandler``."""

from graflow.core.handler import DirectTaskHandler

__all__ = ["DirectTaskHandler"]
