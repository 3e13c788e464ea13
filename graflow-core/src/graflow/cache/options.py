"""``@task(cache=..., cache_key=..., cache_ttl=..., cache_store=...)``: checked once, when the task is built."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from graflow.cache.keys import check_encodable, code_digest


@attrs.frozen
class CacheSpec:
    """A task's cache settings. ``code`` is the digest of its function, computed at build time
    (it travels with a task pickled by value; a task imported by reference computes its own)."""

    code: bytes
    key_fn: Callable[[Mapping[str, Any]], str | bytes] | None = None
    ttl: float | None = None
    store: str | None = None


def build_cache_spec(
    task_id: str,
    func: Callable[..., Any],
    *,
    cache: bool | None,
    cache_key: Any,
    cache_ttl: Any,
    cache_store: Any,
    kwargs: Mapping[str, Any],
    defaults: Iterable[tuple[str, Any]],
) -> CacheSpec | None:
    """The spec for these options, or None when caching is off; bad input names task and option."""
    if cache is False and cache_key is not None:
        raise ValueError(
            f"task {task_id!r}: cache=False together with cache_key: a cache key turns caching on. "
            "Drop cache=False, or drop cache_key."
        )
    if cache_key is not None and not callable(cache_key):
        raise TypeError(
            f"task {task_id!r}: cache_key must be a callable taking the resolved arguments (a dict) and "
            f"returning str or bytes, got {cache_key!r}"
        )
    enabled = bool(cache) or cache_key is not None
    if not enabled:
        extra = [name for name, value in (("cache_ttl", cache_ttl), ("cache_store", cache_store)) if value is not None]
        if extra:
            raise ValueError(
                f"task {task_id!r}: {' and '.join(extra)} given but caching is off; add cache=True (or cache_key=fn)"
            )
        return None
    ttl: float | None = None
    if cache_ttl is not None:
        if isinstance(cache_ttl, bool) or not isinstance(cache_ttl, (int, float)) or not cache_ttl > 0:
            raise ValueError(
                f"task {task_id!r}: cache_ttl must be a number of seconds > 0 (or None: no expiry), got {cache_ttl!r}"
            )
        ttl = float(cache_ttl)
    if cache_store is not None and (not isinstance(cache_store, str) or not cache_store):
        raise TypeError(
            f"task {task_id!r}: cache_store must be a store name such as 'memory', 'file' or 'redis', "
            f"got {cache_store!r}"
        )
    if cache_key is None:  # explicit arguments and defaults are known now: refuse what cannot be hashed
        for name, value in kwargs.items():
            check_encodable(task_id, name, value)
        for name, value in defaults:
            check_encodable(task_id, name, value)
    try:
        code = code_digest(func)
    except TypeError as exc:
        raise TypeError(f"task {task_id!r}: cannot digest its function for the cache key: {exc}") from None
    return CacheSpec(code, cache_key, ttl, cache_store)
