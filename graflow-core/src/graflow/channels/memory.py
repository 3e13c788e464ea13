"""The in-process channel: a dict guarded by a lock, the embedded default."""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from typing import Any

from graflow.channels.base import MISSING, Channel


class MemoryChannel(Channel):
    """A dict per session; atomic operations hold one lock so threads never lose a write."""

    def __init__(self, name: str = "default", data: dict[str, Any] | None = None) -> None:
        self.name = name
        self._data: dict[str, Any] = dict(data or {})
        self._lock = threading.Lock()

    def set(self, key: str, value: Any) -> None:
        self._data[key] = value

    def get(self, key: str, default: Any = None) -> Any:
        return self._data.get(key, default)

    def delete(self, key: str) -> bool:
        return self._data.pop(key, MISSING) is not MISSING

    def keys(self) -> list[str]:
        return list(self._data)

    def clear(self) -> None:
        self._data.clear()

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def update(self, key: str, fn: Callable[[Any], Any], default: Any = None) -> Any:
        with self._lock:
            value = fn(self._data.get(key, default))
            self._data[key] = value
            return value

    def items(self) -> dict[str, Any]:
        return dict(self._data)

    def snapshot(self) -> dict[str, Any]:
        """A shallow copy of the data, for checkpoints and for shipping to another process."""
        with self._lock:
            return copy.copy(self._data)

    def __getstate__(self) -> dict[str, Any]:
        return {"name": self.name, "data": dict(self._data)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.name = state["name"]
        self._data = state["data"]
        self._lock = threading.Lock()
