"""Invalidation: remove a task's cached results, or everything a store holds."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from graflow.cache.base import DEFAULT_STORE, CacheKey, CacheStore
from graflow.cache.runtime import key_for, open_store

if TYPE_CHECKING:
    from graflow.core.engine import WorkflowEngine
    from graflow.core.task import TaskWrapper


def _store(name: str | None, config: Mapping[str, Any] | None, engine: WorkflowEngine | None) -> CacheStore:
    from graflow.plugins.manager import default_host

    settings = {**(engine.config if engine is not None else {}), **(config or {})}
    host = engine.host if engine is not None else default_host()
    return open_store(host, name or str(settings.get("cache_store") or DEFAULT_STORE), settings)


def key_of(task: TaskWrapper, arguments: Mapping[str, Any]) -> CacheKey:
    """The key an execution of ``task`` with these arguments uses. ``arguments`` are what the task
    receives (parameters left out take their defaults; explicit ``kwargs`` of the task apply)."""
    spec = task._cache
    if spec is None:
        raise ValueError(f"task {task.task_id!r} has no cache (add cache=True or cache_key=fn)")
    if not task._params:  # as TaskWrapper.resolve_kwargs: no inspected parameters, the explicit ones pass as given
        resolved = dict(task.kwargs)
    else:
        names = {p.name for p in task._params}
        resolved = {k: v for k, v in task.kwargs.items() if k in names or task._var_kwargs}
    resolved.update(arguments)
    return key_for(task, spec, resolved)  # adds the defaults, as in a run


def invalidate(
    task: TaskWrapper | str,
    arguments: Mapping[str, Any] | None = None,
    *,
    store: str | None = None,
    config: Mapping[str, Any] | None = None,
    engine: WorkflowEngine | None = None,
) -> int:
    """Remove cached results of ``task`` (a task or a task id); returns how many were removed.

    With ``arguments`` only the entry for those arguments goes (see :func:`key_of`). The store is
    ``store``, else the task's ``cache_store``, else config ``cache_store`` (``engine.config`` under
    ``config``), else ``file``; its settings (``cache_dir``, ``redis_url``, ...) come from the same
    config, as in a run.
    """
    task_id = task if isinstance(task, str) else task.task_id
    if store is None and not isinstance(task, str) and task._cache is not None:
        store = task._cache.store
    opened = _store(store, config, engine)
    if arguments is None:
        return opened.clear(task_id)
    if isinstance(task, str):
        raise TypeError(f"invalidate({task!r}, arguments=...) needs the task object: its code is part of the key")
    return int(opened.delete(key_of(task, arguments)))


def clear(
    store: str | None = None, *, config: Mapping[str, Any] | None = None, engine: WorkflowEngine | None = None
) -> int:
    """Remove every cached result in ``store`` (default: config ``cache_store``, else ``file``)."""
    return _store(store, config, engine).clear()
