"""The cache store contract: opaque entries by key, with an optional time to live.

Stores keep bytes, never Python objects: the runtime (:mod:`graflow.cache.runtime`) pickles a result
once, signs it when a secret key is set, and a store only moves the bytes. So ``get`` returning
``None`` always means "no entry" while a cached ``None`` result is a non-empty entry, every store
keeps values the same way, and a plugin store is a few lines of I/O.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import attrs

DEFAULT_STORE = "file"
"""What ``cache_store`` defaults to (README, "Result caching": why a file store per project)."""


@attrs.frozen
class CacheKey:
    """Where one cached result lives: the task it belongs to and the digest of its inputs.

    Stores namespace entries by ``task_id`` so one task's entries can be cleared on their own.
    """

    task_id: str
    digest: str

    def __str__(self) -> str:
        return f"{self.task_id}:{self.digest}"


class CacheStore(ABC):
    """Where cached results live. Registered by name through ``graflow_register_cache_stores``.

    Implementations must be safe to call from several threads at once; stores shared between
    processes (files, Redis) must tolerate concurrent writers of one key (last writer wins, a
    reader never sees half an entry). A store that cannot read an entry reports a miss, never a
    wrong value.
    """

    @abstractmethod
    def get(self, key: CacheKey) -> bytes | None:
        """The entry stored under ``key``, or ``None`` when there is none (or it expired)."""

    @abstractmethod
    def set(self, key: CacheKey, data: bytes, ttl: float | None) -> None:
        """Store ``data`` under ``key``, replacing any entry; it expires after ``ttl`` seconds
        (``None``: kept until deleted or cleared)."""

    @abstractmethod
    def delete(self, key: CacheKey) -> bool:
        """Remove one entry; True when there was one."""

    @abstractmethod
    def clear(self, task_id: str | None = None) -> int:
        """Remove every entry of ``task_id`` (``None``: every entry of this store); how many went."""

    def shipping_config(self) -> dict[str, Any]:
        """Config another process needs to open this same store (a pool worker, a Redis worker):
        picklable, without live clients. The runtime adds ``cache_store`` (the name) and drops
        settings whose names say they are secrets (:func:`graflow.core.remote.is_secret_setting`,
        as graflow-redis does for its payloads): the far side takes those from its own config or
        environment. A URL goes as it is (a password in it included, as in graflow-redis payloads)."""
        return {}
