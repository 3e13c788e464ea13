"""Running a cached task: build its key, return a stored result, or run it and store what it returned.

``execute`` (graflow/core/execution.py) sends a task here only when it has ``cache`` on, so a task
without it pays one attribute check. ``run`` is what really executes the task (its handler, and
whatever wraps it, such as retries), so a hit makes no attempt at all and a miss stores only the
final result.

Where the settings come from: in the run's process, the engine config with the context config on
top (``cache_store``, ``cache_dir``, ``cache_ttl``, store settings such as ``redis_url``); in another
process (a pool worker, a Redis worker), the ``cache_config`` the submitting side put into the
request: the store's name and the settings that open the same store (:meth:`CacheStore.shipping_config`).
"""

from __future__ import annotations

import hashlib
import hmac
import pickle
import threading
import weakref
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from graflow.cache.base import DEFAULT_STORE, CacheKey, CacheStore
from graflow.cache.keys import cache_key, encode_arguments
from graflow.cache.options import config_ttl
from graflow.exceptions import CacheError, GraflowError
from graflow.logs import get_logger

if TYPE_CHECKING:
    from graflow.cache.options import CacheSpec
    from graflow.core.context import TaskExecutionContext
    from graflow.core.handler import TaskHandler
    from graflow.core.task import TaskWrapper
    from graflow.plugins.manager import PluginHost

log = get_logger("graflow.cache")

Runner = Callable[["TaskHandler", "TaskWrapper", "TaskExecutionContext"], Any]

ENTRY_MAGIC = b"GFC1"


# --- entries: the bytes a store keeps --------------------------------------------------------------


def encode_entry(value: Any, key: bytes | None) -> bytes:
    """``value`` pickled (plain pickle first: a class of the running script then loads as that
    class in the next run; cloudpickle for what only it can pickle), signed when a key is set."""
    try:
        body = pickle.dumps(value, protocol=5)
    except Exception:
        import cloudpickle

        body = cloudpickle.dumps(value)
    if key is None:
        return ENTRY_MAGIC + b"U" + body
    return ENTRY_MAGIC + b"S" + hmac.new(key, body, hashlib.sha256).digest() + body


def decode_entry(data: bytes, key: bytes | None) -> Any:
    """The value of an entry; ``ValueError`` for an entry that must not or cannot be loaded."""
    if data[:4] != ENTRY_MAGIC:
        raise ValueError("not a Graflow cache entry")
    kind = data[4:5]
    if kind == b"S":
        if key is None:
            raise ValueError("entry is signed but this process has no key; set GRAFLOW_SECRET_KEY like its writer")
        digest, body = data[5:37], data[37:]
        if not hmac.compare_digest(digest, hmac.new(key, body, hashlib.sha256).digest()):
            raise ValueError("entry signature does not match (tampered, or signed with another key)")
    elif kind == b"U":
        if key is not None:
            raise ValueError("entry is unsigned but a secret key is set here; refusing to unpickle it")
        body = data[5:]
    else:
        raise ValueError("unknown entry kind")
    try:
        return pickle.loads(body)
    except Exception as exc:  # a class that moved or changed since the entry was written
        raise ValueError(f"cannot unpickle the cached value: {type(exc).__name__}: {exc}") from exc


# --- settings and stores of one run, or of one shipped config --------------------------------------


class CacheRuntime:
    """The stores (built once each) and the hit reporting of one run, or of one worker config.

    ``secret`` signs and verifies entries: on the far side, the key that verified the request's
    payload (a worker's ``secret_key``, the run's key handed to its pool); without one, config
    ``secret_key``, else ``GRAFLOW_SECRET_KEY``."""

    def __init__(
        self,
        host: PluginHost,
        config: Mapping[str, Any],
        run: Any = None,
        shipped: bool = False,
        secret: bytes | None = None,
    ) -> None:
        from graflow.core.remote import secret_key

        self.host = host
        self.config = dict(config)
        self.run = run  # the engine's _Run in the run's process; None elsewhere
        self.shipped = shipped
        self.secret = secret if secret is not None else secret_key(self.config)
        self.default_ttl = config_ttl(self.config)
        self.on_hit = run.engine.host.lifecycle.get("graflow_task_cache_hit") if run is not None else None
        self._stores: dict[str, CacheStore] = {}
        self._lock = threading.Lock()

    def store_name(self, spec: CacheSpec) -> str:
        if self.shipped:  # the submitting side resolved it
            return str(self.config["cache_store"])
        return spec.store or str(self.config.get("cache_store") or DEFAULT_STORE)

    def store(self, name: str) -> CacheStore:
        found = self._stores.get(name)
        if found is None:
            with self._lock:
                found = self._stores.get(name)
                if found is None:
                    found = self._stores[name] = open_store(self.host, name, self.config)
        return found

    def ttl(self, spec: CacheSpec) -> float | None:
        return spec.ttl if spec.ttl is not None else self.default_ttl

    def shipping_config(self, spec: CacheSpec) -> dict[str, Any]:
        """What a request carries so the far side opens the same store with the same defaults."""
        from graflow.core.remote import is_secret_setting

        name = self.store_name(spec)
        settings = self.store(name).shipping_config()
        shipped = {k: v for k, v in settings.items() if not is_secret_setting(k)}
        shipped["cache_store"] = name
        if self.default_ttl is not None:
            shipped["cache_ttl"] = self.default_ttl
        return shipped


def open_store(host: PluginHost, name: str, config: Mapping[str, Any]) -> CacheStore:
    """Build store ``name`` from the plugins; an unknown name lists the installed ones."""
    store = host.get("cache store", name).factory(config)
    if not isinstance(store, CacheStore):
        raise GraflowError(f"cache store {name!r} factory returned {store!r}, not a graflow.cache.CacheStore")
    return store


_RUNTIMES: weakref.WeakKeyDictionary[Any, CacheRuntime] = weakref.WeakKeyDictionary()
_SHIPPED: dict[tuple[str, bytes | None], CacheRuntime] = {}
_LOCK = threading.Lock()


def runtime_for(tctx: TaskExecutionContext) -> CacheRuntime | None:
    """The runtime for this execution; None in a process that got no cache settings (the side that
    shipped the task, such as the Docker handler's host, caches around the whole execution)."""
    ectx = tctx.execution_context
    run = getattr(ectx, "active_run", None)
    if run is not None:
        return _RUNTIMES.get(run) or _run_runtime(run)
    shipped = getattr(ectx, "cache_config", None)
    if shipped is None:
        if hasattr(ectx, "active_run"):  # an ExecutionContext outside an engine run
            from graflow.plugins.manager import default_host

            return CacheRuntime(default_host(), ectx.config)
        return None
    return _shipped_runtime(shipped, getattr(ectx, "cache_secret", None))


def _run_runtime(run: Any) -> CacheRuntime:
    with _LOCK:
        found = _RUNTIMES.get(run)
        if found is None:
            config = {**run.engine.config, **run.ctx.config}
            found = _RUNTIMES[run] = CacheRuntime(run.engine.host, config, run)
        return found


def _shipped_runtime(config: Mapping[str, Any], secret: bytes | None) -> CacheRuntime:
    """One runtime per shipped config and signing key: a worker serving runs with different keys
    (or none) signs and verifies each run's entries with that run's key."""
    import json

    marker = (json.dumps(config, sort_keys=True, default=repr), secret)
    found = _SHIPPED.get(marker)
    if found is None:
        from graflow.plugins.manager import default_host

        with _LOCK:
            found = _SHIPPED.get(marker)
            if found is None:
                if len(_SHIPPED) > 64:  # a long-lived worker serving many runs' configs
                    _SHIPPED.clear()
                found = _SHIPPED[marker] = CacheRuntime(default_host(), config, shipped=True, secret=secret)
    return found


def shipping_config(run: Any, task: TaskWrapper) -> dict[str, Any]:
    """The ``cache_config`` of a request for cached ``task``, built in the run's process."""
    runtime = _RUNTIMES.get(run) or _run_runtime(run)
    assert task._cache is not None
    return runtime.shipping_config(task._cache)


# --- one execution ----------------------------------------------------------------------------------


def key_for(task: TaskWrapper, spec: CacheSpec, kwargs: Mapping[str, Any]) -> CacheKey:
    """The key of ``task`` called with ``kwargs`` (its resolved arguments; defaults of parameters
    left out are added here, so every caller computes the same key)."""
    kwargs = spec.arguments(kwargs)
    if spec.key_fn is None:
        return cache_key(task.task_id, spec.code, encode_arguments(task.task_id, kwargs), custom=False)
    custom = spec.key_fn(MappingProxyType(kwargs))
    if isinstance(custom, str):
        custom = custom.encode("utf-8", "surrogatepass")
    if not isinstance(custom, bytes):
        raise TypeError(f"task {task.task_id!r}: cache_key must return str or bytes, got {type(custom).__name__}")
    return cache_key(task.task_id, spec.code, custom, custom=True)


def run_cached(handler: TaskHandler, task: TaskWrapper, tctx: TaskExecutionContext, run: Runner) -> Any:
    """Return the cached result of this execution, or ``run`` it and cache what it returns."""
    runtime = runtime_for(tctx)
    spec = task._cache
    if runtime is None or spec is None:
        return run(handler, task, tctx)
    kwargs = task.resolve_kwargs(tctx)
    tctx._kwargs = kwargs  # the execution reuses them: resolved once
    key = key_for(task, spec, kwargs)
    name = runtime.store_name(spec)
    store = runtime.store(name)
    try:
        data = store.get(key)
    except Exception as exc:  # a cache that cannot be read is a miss, never a failed task
        log.warning("cache_read_failed", task_id=task.task_id, store=name, error=f"{type(exc).__name__}: {exc}")
        data = None
    if data is not None:
        try:
            value = decode_entry(data, runtime.secret)
        except ValueError as exc:
            log.warning("cache_entry_unreadable", task_id=task.task_id, store=name, key=str(key), reason=str(exc))
        else:
            _report_hit(runtime, tctx, key, name)
            return value
    result = run(handler, task, tctx)
    _refuse_control_flow(task, tctx)
    try:
        entry = encode_entry(result, runtime.secret)
    except Exception as exc:
        log.warning(
            "task_result_not_cached",
            task_id=task.task_id,
            reason=f"the result cannot be pickled: {type(exc).__name__}: {exc}",
        )
        return result
    try:
        store.set(key, entry, runtime.ttl(spec))
    except Exception as exc:
        log.warning("cache_write_failed", task_id=task.task_id, store=name, error=f"{type(exc).__name__}: {exc}")
    return result


def _refuse_control_flow(task: TaskWrapper, tctx: TaskExecutionContext) -> None:
    asked = [
        name
        for name, used in (
            ("next_task()", tctx._next_tasks),
            ("next_iteration()", tctx._iterate is not None),
            ("terminate_workflow()/cancel_workflow()", tctx._control is not None),
        )
        if used
    ]
    if asked:
        raise CacheError(
            f"task {task.task_id!r} has caching on but called {', '.join(asked)}: a cache hit returns only "
            "the result and skips these requests, so the workflow would take another path. Remove cache "
            "from this task, or move the control flow into a task that is not cached."
        )


def _report_hit(runtime: CacheRuntime, tctx: TaskExecutionContext, key: CacheKey, store: str) -> None:
    run = runtime.run
    if run is None:  # another process: the outcome carries the hit to the run, which reports it
        if runtime.shipped:
            tctx.execution_context.cache_hit = str(key)
        log.debug("task_cache_hit", task_id=tctx.task_id, cycle=tctx.cycle_count, key=str(key), store=store)
        return
    if run.debug:
        run.rlog.debug("task_cache_hit", task_id=tctx.task_id, cycle=tctx.cycle_count, key=str(key), store=store)
    if runtime.on_hit is not None:
        runtime.on_hit(
            run_id=run.run_id, session_id=run.ctx.session_id, task_id=tctx.task_id, cycle=tctx.cycle_count, key=str(key)
        )


def report_shipped_hit(run: Any, task_id: str, cycle: int, key: str) -> None:
    """A member that ran in another process came from the cache: tell this run's plugins."""
    if run.debug:
        run.rlog.debug("task_cache_hit", task_id=task_id, cycle=cycle, key=key)
    hook = run.engine.host.lifecycle.get("graflow_task_cache_hit")
    if hook is not None:
        hook(run_id=run.run_id, session_id=run.ctx.session_id, task_id=task_id, cycle=cycle, key=key)
