"""Turning an ExecutionContext into checkpoint data and back.

The live queue and channel are never pickled: their *data* is (the pending task specs, the channel's
items) together with the backend names, and a resume rebuilds both through the plugin registries, so
a Redis-backed run resumes against Redis. Everything else is taken by shallow copy (no deep copies:
performance issue #7, W6); the copies also keep pickling safe from threads still writing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from graflow.core.context import ExecutionContext
from graflow.core.remote import is_secret_setting
from graflow.core.task import ParallelGroup, TaskWrapper
from graflow.exceptions import CheckpointError
from graflow.logs import get_logger
from graflow.queue.base import NO_DATA, TaskSpec

if TYPE_CHECKING:
    from graflow.core.graph import TaskGraph
    from graflow.plugins.manager import PluginHost

log = get_logger("graflow.checkpoint")

_PLAIN = (str, int, float, bool, bytes, type(None))


def portable_config(config: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The config entries a checkpoint may keep, and the keys it drops (secrets, live clients)."""
    kept: dict[str, Any] = {}
    dropped: list[str] = []
    for key, value in config.items():
        if is_secret_setting(key):  # never written into a checkpoint; pass them again on resume
            dropped.append(key)
        elif isinstance(value, _PLAIN):
            kept[key] = value
        else:
            import cloudpickle

            try:
                cloudpickle.dumps(value)
            except Exception:  # a live client, a lock, a socket: the caller passes it again on resume
                dropped.append(key)
            else:
                kept[key] = value
    return kept, dropped


def _executable(graph: TaskGraph, task_id: str) -> dict[str, Any]:
    """How a pending task's code is stored: by reference when importable, else by value."""
    node = graph.nodes.get(task_id)
    if isinstance(node, TaskWrapper):
        where = node.import_path()
        if where is not None:
            module, qualname = where
            return {
                "strategy": "reference",
                "module": module,
                "name": qualname.rpartition(".")[2],
                "qualname": qualname,
            }
        return {"strategy": "value"}
    if isinstance(node, ParallelGroup):
        return {"strategy": "group", "members": node.member_ids}
    return {"strategy": "missing"}


def _describe(graph: TaskGraph, spec: TaskSpec) -> dict[str, Any]:
    return {
        "task_id": spec.task_id,
        "executable": _executable(graph, spec.task_id),
        "has_data": spec.data is not NO_DATA,
    }


def capture(ctx: ExecutionContext, current_task: TaskSpec | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(payload, state)``: what goes into the ``.pkl`` and what goes into ``.state.json``."""
    graph = ctx.graph
    if current_task is not None and current_task.task_id in graph.member_of:
        raise CheckpointError(
            f"checkpoint(deferred=False) in task {current_task.task_id!r}, a member of parallel group "
            f"{graph.member_of[current_task.task_id]!r}: a member cannot be re-run on its own. Use a "
            "deferred checkpoint (the default), which is taken when the group's barrier completes."
        )
    channel = ctx.channel
    snapshot = getattr(channel, "snapshot", None)
    channel_data = snapshot() if snapshot is not None else channel.items()
    pending = ctx.queue.pending()
    config, dropped = portable_config(ctx.config)
    completed = set(ctx.completed)
    cycle_counts = dict(ctx.cycle_counts)
    waiting = dict(ctx.waiting)
    payload = {
        "session_id": ctx.session_id,
        "graph": graph,
        "channel": channel_data,
        "results": dict(ctx.results),
        "pending": pending,
        "current_task": current_task,
        "completed": completed,
        "cycle_counts": cycle_counts,
        "waiting": waiting,
        "steps": ctx.steps,
        "start_nodes": list(ctx.start_nodes),
        "queue_backend": ctx.queue_backend,
        "channel_backend": ctx.channel_backend,
        "config": config,
        "dropped_config_keys": dropped,
        "max_steps": ctx.max_steps,
    }
    state = {
        "session_id": ctx.session_id,
        "steps": ctx.steps,
        "completed_tasks": sorted(completed),
        "cycle_counts": cycle_counts,
        "pending_tasks": [_describe(graph, spec) for spec in pending],
        "current_task": _describe(graph, current_task) if current_task is not None else None,
        "resume_from_current_task": current_task is not None,
        "waiting": waiting,
        "backend": {"queue": ctx.queue_backend, "channel": ctx.channel_backend},
        "dropped_config_keys": dropped,
    }
    return payload, state


def restore(payload: Mapping[str, Any], host: PluginHost, config: Mapping[str, Any] | None) -> ExecutionContext:
    """A context equal to the captured one, with its queue and channel rebuilt through ``host``."""
    graph: TaskGraph = payload["graph"]
    for node in list(graph.nodes.values()):
        if isinstance(node, ParallelGroup):
            node._attach(graph)  # a pickled group forgets its graph (ParallelGroup.__getstate__)
    settings = {**payload["config"], **(config or {})}
    missing = [key for key in payload["dropped_config_keys"] if key not in settings]
    if missing:
        log.warning("checkpoint_config_not_restored", keys=missing, hint="pass them as config= to resume")
    session_id: str = payload["session_id"]
    queue = host.get("queue backend", payload["queue_backend"]).factory(session_id, settings)
    channel = host.get("channel backend", payload["channel_backend"]).factory(session_id, settings)
    ctx = ExecutionContext(
        graph,
        queue,
        channel,
        session_id=session_id,
        start_nodes=list(payload["start_nodes"]),
        queue_backend=payload["queue_backend"],
        channel_backend=payload["channel_backend"],
        config=settings,
        max_steps=payload["max_steps"],
    )
    ctx.results = payload["results"]
    ctx.completed = payload["completed"]
    ctx.cycle_counts = payload["cycle_counts"]
    ctx.waiting = payload["waiting"]
    ctx.steps = payload["steps"]
    if channel.keys():  # a shared backend still holding the crashed run's later writes
        channel.clear()
    for key, value in payload["channel"].items():
        channel.set(key, value)
    specs: list[TaskSpec] = list(payload["pending"])
    current: TaskSpec | None = payload["current_task"]
    if current is not None:
        # The task that took an immediate checkpoint runs again first, as the same cycle and step.
        specs.insert(0, current)
        count = ctx.cycle_counts.get(current.task_id, 0) - 1
        if count > 0:
            ctx.cycle_counts[current.task_id] = count
        else:
            ctx.cycle_counts.pop(current.task_id, None)
        ctx.steps = max(0, ctx.steps - 1)
    if len(queue):
        queue.clear()
    queue.put_many(specs)
    return ctx
