"""Upstream Graflow 0.2's import path for ``DockerTaskHandler``, which Graflow ships in the
graflow-docker package (``pip install graflow-docker``); importing it from here needs that package."""

from __future__ import annotations

from typing import Any

__all__ = ["DockerTaskHandler"]  # noqa: F822 - provided lazily by __getattr__ below


def __getattr__(name: str) -> Any:
    if name != "DockerTaskHandler":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        from graflow_docker import DockerTaskHandler
    except ImportError as exc:
        raise ImportError(
            "DockerTaskHandler is in the graflow-docker package: pip install graflow-docker "
            "(then `from graflow_docker import DockerTaskHandler`, or keep this import path)"
        ) from exc
    return DockerTaskHandler
