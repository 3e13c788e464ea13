"""The JSON run report ``graflow run --report FILE`` writes: what ran, how it ended, and the graph.

The layout is versioned by ``"schema"`` (now 1) and documented in graflow-core/README.md ("graflow
run"); a reader checks the number before anything else. ``graflow show --report`` draws from it.
The file is replaced atomically (temporary file, then ``os.replace``), so a reader never sees half
a report, even when the run was interrupted while writing. It is strict JSON: a float that JSON
cannot hold (NaN, infinity, e.g. from ``-p x=NaN``) is written as the string ``"NaN"``,
``"Infinity"`` or ``"-Infinity"``.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graflow.core.graph import TaskGraph
from graflow.core.task import ParallelGroup, TaskWrapper
from graflow.exceptions import ParallelGroupError, TaskTimeoutError
from graflow.runner.recorder import (
    FAILED,
    INTERRUPTED,
    NOT_RUN,
    RUNNING,
    SKIPPED,
    RunRecorder,
    error_info,
)

if TYPE_CHECKING:
    from graflow.core.context import ExecutionContext

REPORT_SCHEMA = 1

TASK_STATUSES = ("succeeded", "failed", "skipped", "not_run", "cache_hit", "interrupted")
RUN_STATUSES = ("succeeded", "failed", "cancelled", "interrupted")


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


def _json_safe(value: Any) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


def graph_section(graph: TaskGraph) -> dict[str, Any]:
    """Nodes (tasks and groups, dynamic or not), static and dynamic edges, group membership."""
    nodes = []
    groups: dict[str, dict[str, Any]] = {}
    for node_id, node in graph.nodes.items():
        kind = "group" if isinstance(node, ParallelGroup) else "task"
        nodes.append({"id": node_id, "kind": kind, "dynamic": node_id in graph.dynamic})
        if isinstance(node, ParallelGroup):
            groups[node_id] = {"members": node.member_ids, "backend": node.backend}
    static = [[s, t] for s, targets in graph.successors.items() for t in targets]
    return {
        "nodes": nodes,
        "edges": static,
        "dynamic_edges": [list(edge) for edge in graph.dynamic_edges],
        "groups": groups,
    }


def build_report(
    *,
    recorder: RunRecorder,
    context: ExecutionContext | None,
    workflow: str,
    status: str,
    error: BaseException | None,
    started_at: float,
    finished_at: float,
    options: Mapping[str, Any],
) -> dict[str, Any]:
    """The report as a JSON-ready dict (see the module docstring)."""
    graph = context.graph if context is not None else None
    if graph is not None:  # dynamic tasks that never started still belong to the run's graph
        for node_id, node in graph.nodes.items():
            if isinstance(node, TaskWrapper):
                recorder.record_for(node_id)
    if isinstance(error, ParallelGroupError):  # members whose outcome never reached a hook (a dead process)
        for task_id, member_error in error.errors.items():
            record = recorder.record_for(task_id)
            if record.status != FAILED:
                record.status = FAILED
                record.error = error_info(member_error)
    timed_out = _group_timeout(error)
    if timed_out is not None:  # members the group's timeout stopped failed; they were not interrupted
        for task_id in getattr(error, "unfinished", None) or ():
            record = recorder.record_for(task_id)
            if record.status in (RUNNING, NOT_RUN):
                record.status = FAILED
                record.error = error_info(error) if error is not None else None
    tasks: dict[str, Any] = {}
    counts = dict.fromkeys(TASK_STATUSES, 0)
    for task_id, record in recorder.tasks.items():
        task_status = record.status
        if task_status == RUNNING:
            task_status = INTERRUPTED
        elif task_status == NOT_RUN and status == "succeeded":
            task_status = SKIPPED  # the run finished without needing it (goto, terminate, a branch not taken)
        counts[task_status] = counts.get(task_status, 0) + 1
        tasks[task_id] = {
            "status": task_status,
            "attempts": record.attempts,
            "retries": record.retries,
            "cycles": record.cycles,
            "duration_s": round(record.duration_s, 6),
            "worker": record.worker,
            "error": record.error,
            "cache_hits": record.cache_hits,
            "from_checkpoint": record.from_checkpoint,
            "dynamic": graph is not None and task_id in graph.dynamic,
            "group": graph.member_of.get(task_id) if graph is not None else None,
            "started_at": _iso(record.started_at),
            "finished_at": _iso(record.finished_at),
        }
    graph_info = graph_section(graph if graph is not None else TaskGraph())
    for group_id, group in graph_info["groups"].items():
        group["status"] = _group_status(group_id, group["members"], tasks, context, error, status)
    run_error: dict[str, Any] | None = None
    if error is not None:
        run_error = dict(error_info(error))
        run_error["task_id"] = getattr(error, "task_id", None) or getattr(error, "group_id", None)
    return {
        "schema": REPORT_SCHEMA,
        "workflow": workflow,
        "target": options.get("target"),
        "params": {k: _json_safe(v) for k, v in dict(options.get("params") or {}).items()},
        "session_id": recorder.session_id or (context.session_id if context is not None else None),
        "run_id": recorder.run_id,
        "status": status,
        "started_at": _iso(started_at),
        "finished_at": _iso(finished_at),
        "duration_s": round(finished_at - started_at, 6),
        "steps": context.steps if context is not None else recorder.steps,
        "queue_backend": options.get("queue_backend"),
        "channel_backend": options.get("channel_backend"),
        "resumed_from": options.get("resume"),
        "last_checkpoint": context.last_checkpoint_path if context is not None else None,
        "error": run_error,
        "summary": {"tasks": len(tasks), **counts},
        "tasks": tasks,
        "graph": graph_info,
    }


def _group_status(
    group_id: str,
    members: list[str],
    tasks: Mapping[str, Any],
    context: ExecutionContext | None,
    error: BaseException | None,
    run_status: str,
) -> str:
    if context is not None and group_id in context.completed:
        return "succeeded"
    if (isinstance(error, ParallelGroupError) and error.group_id == group_id) or _group_timeout(error) == group_id:
        return "failed"
    member_statuses = {tasks[m]["status"] for m in members if m in tasks}
    if INTERRUPTED in member_statuses:
        return INTERRUPTED
    if FAILED in member_statuses:
        return FAILED
    if member_statuses & {"succeeded", "cache_hit"}:
        return "succeeded" if run_status == "succeeded" else INTERRUPTED
    return SKIPPED if run_status == "succeeded" else NOT_RUN


def _group_timeout(error: BaseException | None) -> str | None:
    """The id of the group whose ``group_timeout`` ended the run, if that is what ``error`` is."""
    if isinstance(error, TaskTimeoutError):
        group_id = getattr(error, "group_id", None)
        return group_id if isinstance(group_id, str) else None
    return None


_NON_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def strict_json(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by its name as a string (JSON has neither)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else _NON_FINITE[repr(value)]
    if isinstance(value, dict):
        return {key: strict_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [strict_json(item) for item in value]
    return value


def write_report(path: str | os.PathLike[str], report: Mapping[str, Any]) -> Path:
    """Write ``report`` as JSON to ``path`` atomically; returns the path written."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(strict_json(report), handle, indent=2, default=repr, allow_nan=False)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def read_report(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A report written by ``graflow run``; a report of another schema raises ValueError."""
    with open(path, encoding="utf-8") as handle:
        report = json.load(handle)
    if not isinstance(report, dict) or report.get("schema") != REPORT_SCHEMA:
        found = report.get("schema") if isinstance(report, dict) else type(report).__name__
        raise ValueError(
            f"{str(path)!r} is not a graflow run report of schema {REPORT_SCHEMA} (found schema {found!r})"
        )
    return report
