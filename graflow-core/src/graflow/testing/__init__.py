"""Conformance suites that every backend and handler runs, the built-ins first (needs pytest)."""

from graflow.testing.handler import HandlerSuite

__all__ = ["HandlerSuite"]
