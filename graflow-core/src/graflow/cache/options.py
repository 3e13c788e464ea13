"""``@task(cache=..., cache_key=..., cache_ttl=..., cache_store=...)``: checked once, when the task is built."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from graflow.cache.keys import check_encodable, code_digest


@attrs.frozen
class CacheSpec:
    """A task's cache settings. ``code`` is the digest of its function, computed at build time
    (it travels with a task pickled by value; a task imported by reference computes its own).
    ``defaults`` are the parameters' default values, also taken at build time: an execution
    receives them without naming them, and they are part of its key (see :meth:`arguments`)."""

    code: bytes
    key_fn: Callable[[Mapping[str, Any]], str | bytes] | None = None
    ttl: float | None = None
    store: str | None = None
    defaults: dict[str, Any] = attrs.field(factory=dict, hash=False)  # not mutated after build

    def arguments(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """What the task receives: ``kwargs`` (its resolved arguments) over its defaults. The one
        place a key's arguments are completed: runs, :func:`graflow.cache.key_of` and ``cache_key=fn``."""
        defaults = getattr(self, "defaults", None)  # a spec pickled before defaults were kept has none
        return {**defaults, **kwargs} if defaults else dict(kwargs)


def positive_ttl(value: Any) -> bool:
    """Whether ``value`` is a usable TTL: a finite number of seconds > 0 (not a bool)."""
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def config_ttl(config: Mapping[str, Any]) -> float | None:
    """Config ``cache_ttl`` (every cached task without its own), checked like the task option."""
    value = config.get("cache_ttl")
    if value is None:
        return None
    if isinstance(value, str):  # from --config or an environment-style source
        with contextlib.suppress(ValueError):
            value = float(value)
    if not positive_ttl(value):
        raise ValueError(
            f"config cache_ttl must be a number of seconds > 0 (or unset: no expiry), got {value!r}; "
            "fix the engine's or the run's config"
        )
    return float(value)


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
    """The spec for these options, or None when caching is off; bad input names task and option.

    ``defaults`` are every parameter's default value (explicit ``kwargs`` win over them)."""
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
        if not positive_ttl(cache_ttl):
            raise ValueError(
                f"task {task_id!r}: cache_ttl must be a number of seconds > 0, finite (or None: no expiry), "
                f"got {cache_ttl!r}"
            )
        ttl = float(cache_ttl)
    if cache_store is not None and (not isinstance(cache_store, str) or not cache_store):
        raise TypeError(
            f"task {task_id!r}: cache_store must be a store name such as 'memory', 'file' or 'redis', "
            f"got {cache_store!r}"
        )
    default_values = dict(defaults)
    if cache_key is None:  # explicit arguments and defaults are known now: refuse what cannot be hashed
        for name, value in kwargs.items():
            check_encodable(task_id, name, value)
        for name, value in default_values.items():
            if name not in kwargs:
                check_encodable(task_id, name, value)
    try:
        code = code_digest(func)
    except TypeError as exc:
        raise TypeError(f"task {task_id!r}: cannot digest its function for the cache key: {exc}") from None
    return CacheSpec(code, cache_key, ttl, cache_store, default_values)
