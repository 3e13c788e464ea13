"""MemoryCacheStore (``cache_store="memory"``): entries in this process's memory.

One store per process (the registered factory always returns the same object), so entries outlive
a run and serve the next run in the same process. Members that run in a process pool or on Redis
workers see their own process's store; use ``file`` or ``redis`` to share entries between processes.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from graflow.cache.base import CacheKey, CacheStore

DEFAULT_MAX_ENTRIES = 10_000


class MemoryCacheStore(CacheStore):
    """A dict with expiry times, least recently used entries evicted beyond ``max_entries``.

    ``clock`` returns seconds (default ``time.monotonic``); tests pass their own to expire entries
    without sleeping.
    """

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES, clock: Callable[[], float] = time.monotonic) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {max_entries}")
        self.max_entries = max_entries
        self.clock = clock
        self._entries: OrderedDict[CacheKey, tuple[bytes, float | None]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: CacheKey) -> bytes | None:
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                return None
            data, expires = found
            if expires is not None and self.clock() >= expires:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return data

    def set(self, key: CacheKey, data: bytes, ttl: float | None) -> None:
        expires = None if ttl is None else self.clock() + ttl
        with self._lock:
            self._entries[key] = (data, expires)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def delete(self, key: CacheKey) -> bool:
        with self._lock:
            return self._entries.pop(key, None) is not None

    def clear(self, task_id: str | None = None) -> int:
        with self._lock:
            doomed = [k for k in self._entries if task_id is None or k.task_id == task_id]
            for key in doomed:
                del self._entries[key]
            return len(doomed)

    def __len__(self) -> int:
        return len(self._entries)


SHARED = MemoryCacheStore()
"""The process's store: what ``cache_store="memory"`` uses."""
