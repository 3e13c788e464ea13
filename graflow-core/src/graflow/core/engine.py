"""WorkflowEngine: takes ready tasks from the run's queue and executes them until none are left.

The loop is the hot path (performance issue: ≤5 µs per no-op task). Everything that can be decided
once per run is decided before it starts: which lifecycle hooks have implementations, whether per-task
log events are enabled, the handler for each name. Per task it does dictionary work only: no graph
scans, no signature inspection, no context rebuilt, no record kept per loop iteration.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from graflow.core.attempt_options import TIMED_TASKS
from graflow.core.attempts import AttemptObserver, attempts_made, check_timeout_handlers
from graflow.core.context import ExecutionContext, TaskExecutionContext
from graflow.core.execution import execute_with_default
from graflow.core.graph import ACTIVE_GRAPH, TaskGraph
from graflow.core.groups import GroupRunning
from graflow.core.handler import DirectTaskHandler, TaskHandler
from graflow.core.retry import default_attempts
from graflow.core.task import Executable, ParallelGroup, TaskWrapper
from graflow.exceptions import (
    DuplicateTaskError,
    GraflowError,
    MaxCyclesExceededError,
    MaxStepsExceededError,
    TaskExecutionError,
    TaskNotFoundError,
    WorkflowCancelledError,
)
from graflow.logs import GraflowLogger, get_logger
from graflow.plugins.manager import PluginHost, default_host
from graflow.queue.base import TaskSpec

log = get_logger("graflow.engine")


def _debug_enabled(logger: GraflowLogger) -> bool:
    """Per-task events are DEBUG: only built when the application's logging wants them (checked once per run)."""
    return logger.is_enabled_for(logging.DEBUG)


class WorkflowEngine:
    """Executes runs. Handlers come from plugins (by name) and from :meth:`register_handler`.

    ``plugins`` adds plugin objects or modules that are not installed as packages; ``config`` is
    passed to handler factories and coordinators.
    """

    def __init__(self, plugins: Iterable[object] | None = None, config: Mapping[str, Any] | None = None) -> None:
        plugin_list = list(plugins or ())
        self.host: PluginHost = PluginHost(plugin_list) if plugin_list else default_host()
        self.config: dict[str, Any] = dict(config or {})
        self._handlers: dict[str, TaskHandler] = {"direct": DirectTaskHandler()}
        self._registered: set[str] = set()

    # --- handlers ----------------------------------------------------------------------------------

    def register_handler(self, name: str, handler: TaskHandler) -> None:
        """Use ``handler`` for tasks declared with ``@task(handler=name)``, wherever this engine runs them."""
        if not isinstance(handler, TaskHandler):
            raise TypeError(f"register_handler({name!r}, ...) expects a TaskHandler instance, got {handler!r}")
        self._handlers[name] = handler
        self._registered.add(name)

    def handler(self, name: str) -> TaskHandler:
        """The handler for ``name``: registered on this engine, else built once from a plugin."""
        found = self._handlers.get(name)
        if found is None:
            try:
                registration = self.host.get("handler", name)
            except LookupError as exc:
                if self._registered:
                    exc.add_note(f"Handlers registered on this engine: {', '.join(sorted(self._registered))}.")
                raise
            found = registration.factory(self.config)
            self._handlers[name] = found
        return found

    # --- runs --------------------------------------------------------------------------------------

    def execute(self, context: ExecutionContext, start_task_id: str | None = None) -> Any:
        """Run until the queue is empty; returns the result of the last task executed.

        ``start_task_id`` queues one more task first (e.g. to re-run a step of a resumed run).
        """
        if start_task_id is not None:
            context.graph.get(start_task_id)
            context.queue.put(TaskSpec(start_task_id))
        run_id = uuid.uuid4().hex[:12]
        rlog = log.bind(session_id=context.session_id, run_id=run_id)
        hooks = self.host.lifecycle
        started = time.perf_counter()
        rlog.info("workflow_started", pending=len(context.queue))
        if hooks["graflow_run_started"] is not None:
            hooks["graflow_run_started"](
                run_id=run_id,
                session_id=context.session_id,
                start_tasks=[s.task_id for s in context.queue.pending()],
            )
        token = ACTIVE_GRAPH.set(None)  # tasks built while running must not attach themselves to a workflow
        error: BaseException | None = None
        observer = AttemptObserver(run_id, context.session_id, rlog, hooks["graflow_task_retrying"])
        outer_observer, context.attempt_observer = context.attempt_observer, observer
        outer_run = context.active_run  # _Run sets its own; a finished run must not stay reachable
        try:
            return _Run(self, context, run_id, rlog).loop()
        except BaseException as exc:
            error = exc
            raise
        finally:
            observer.stop.set()  # members still waiting out a retry delay (an abandoned group) give up
            context.attempt_observer = outer_observer
            context.active_run = outer_run  # later cache use of this context is not this run's
            ACTIVE_GRAPH.reset(token)
            duration = time.perf_counter() - started
            if error is None:
                rlog.info("workflow_finished", steps=context.steps, duration_s=round(duration, 6))
            else:
                rlog.error(
                    "workflow_failed",
                    steps=context.steps,
                    duration_s=round(duration, 6),
                    error=f"{type(error).__name__}: {error}",
                )
            if hooks["graflow_run_finished"] is not None:
                hooks["graflow_run_finished"](
                    run_id=run_id,
                    session_id=context.session_id,
                    duration_s=duration,
                    steps=context.steps,
                    error=error,
                )


class _Run(GroupRunning):
    """One ``execute`` call: the loop and the bookkeeping it shares with parallel groups."""

    def __init__(self, engine: WorkflowEngine, ctx: ExecutionContext, run_id: str, rlog: Any) -> None:
        self.engine = engine
        self.ctx = ctx
        ctx.active_run = self
        self.run_id = run_id
        self.rlog = rlog
        self.debug = _debug_enabled(rlog)
        hooks = engine.host.lifecycle
        self.on_started = hooks["graflow_task_started"]
        self.on_succeeded = hooks["graflow_task_succeeded"]
        self.on_failed = hooks["graflow_task_failed"]
        self.timed = self.debug or self.on_succeeded is not None or self.on_failed is not None
        graph = ctx.graph
        pending_ids = [s.task_id for s in ctx.queue.pending()]
        if ctx.current_task is not None:
            pending_ids.append(ctx.current_task.task_id)
        # Only predecessors this run can reach are waited for (a start node in the middle of a graph).
        self.reachable = graph.reachable_from([*ctx.start_nodes, *pending_ids, *ctx.completed])
        default_cycles = ctx.config.get("max_cycles", engine.config.get("max_cycles"))
        self.default_max_cycles: int | None = int(default_cycles) if default_cycles else None
        # Retries for tasks that declare none (default_max_retries): resolved here, once per run.
        default_retries = ctx.config.get("max_retries", engine.config.get("max_retries"))
        self.default_attempts = default_attempts(default_retries, "the run's max_retries setting")
        self.execute_task = execute_with_default(self.default_attempts)
        if TIMED_TASKS:  # a timeout its handler cannot honour fails now, before any task runs
            check_timeout_handlers(engine.handler, graph.nodes)

    # --- the loop ----------------------------------------------------------------------------------

    def loop(self) -> Any:
        ctx = self.ctx
        graph = ctx.graph
        nodes = graph.nodes
        queue_get = ctx.queue.get
        results = ctx.results
        cycles = ctx.cycle_counts
        handlers = self.engine._handlers
        max_steps = ctx.max_steps
        default_max_cycles = self.default_max_cycles
        execute = self.execute_task
        perf_counter = time.perf_counter
        last_result: Any = None
        while (spec := queue_get()) is not None:
            task_id = spec.task_id
            if ctx.steps >= max_steps:
                ctx.queue.put(spec)  # keep it pending: a checkpoint taken now must still contain it
                raise MaxStepsExceededError(max_steps, task_id)
            ctx.steps += 1
            task = nodes.get(task_id)
            if task is None:
                raise TaskNotFoundError(task_id, list(nodes))
            cycle = cycles.get(task_id, 0) + 1
            limit = getattr(task, "max_cycles", None) or default_max_cycles
            if limit is not None and cycle > limit:
                raise MaxCyclesExceededError(task_id, limit)
            cycles[task_id] = cycle
            ctx.current_task = spec
            tctx = TaskExecutionContext(ctx, task_id, cycle, spec.data)
            try:
                if type(task) is TaskWrapper:
                    handler = handlers.get(task.handler) or self.engine.handler(task.handler)
                    if self.timed or self.on_started is not None:
                        result = self._execute_observed(handler, task, tctx)
                    else:
                        t0 = perf_counter()  # ~50 ns: the failure event reports a real duration
                        try:
                            result = execute(handler, task, tctx)
                        except Exception as exc:  # KeyboardInterrupt and SystemExit pass through unwrapped
                            self._failed(task_id, cycle, perf_counter() - t0, exc, attempts_made(task, tctx))
                            raise TaskExecutionError(task_id, exc) from exc
                elif isinstance(task, ParallelGroup):
                    result = self.run_group(task, tctx)
                else:
                    raise GraflowError(f"graph node {task_id!r} is not executable: {task!r}")
            except BaseException:
                # The failed task stays pending, its attempt uncounted: a checkpoint taken now, or
                # another execute() of this context once the cause is fixed, runs it again.
                cycles[task_id] = cycle - 1
                ctx.current_task = None
                ctx.queue.put(spec)
                raise
            results[task_id] = result
            last_result = result
            ctx.current_task = None
            if self._advance(task_id, tctx):
                break
        return last_result

    def _execute_observed(self, handler: TaskHandler, task: TaskWrapper, tctx: TaskExecutionContext) -> Any:
        task_id, cycle = task.task_id, tctx.cycle_count
        if self.on_started is not None:
            self.on_started(run_id=self.run_id, session_id=self.ctx.session_id, task_id=task_id, cycle=cycle)
        if self.debug:
            self.rlog.debug("task_started", task_id=task_id, cycle=cycle)
        t0 = time.perf_counter()
        try:
            result = self.execute_task(handler, task, tctx)
        except Exception as exc:  # KeyboardInterrupt and SystemExit pass through unwrapped
            self._failed(task_id, cycle, time.perf_counter() - t0, exc, attempts_made(task, tctx))
            raise TaskExecutionError(task_id, exc) from exc
        self._succeeded(task_id, cycle, time.perf_counter() - t0, result, attempts_made(task, tctx))
        return result

    def _succeeded(
        self, task_id: str, cycle: int, duration: float, result: Any, attempts: int = 1, worker_id: str | None = None
    ) -> None:
        if self.debug:
            extra = {"attempts": attempts} if attempts != 1 else {}
            self.rlog.debug("task_succeeded", task_id=task_id, cycle=cycle, duration_s=round(duration, 6), **extra)
        if self.on_succeeded is not None:
            self.on_succeeded(
                run_id=self.run_id,
                session_id=self.ctx.session_id,
                task_id=task_id,
                cycle=cycle,
                duration_s=duration,
                result=result,
                worker_id=worker_id,
                attempts=attempts,
            )

    def _failed(
        self,
        task_id: str,
        cycle: int,
        duration: float,
        exc: BaseException,
        attempts: int = 1,
        worker_id: str | None = None,
    ) -> None:
        self.rlog.error(
            "task_failed",
            task_id=task_id,
            cycle=cycle,
            duration_s=round(duration, 6),
            error=f"{type(exc).__name__}: {exc}",
            **({"attempts": attempts} if attempts != 1 else {}),
        )
        if self.on_failed is not None:
            try:
                self.on_failed(
                    run_id=self.run_id,
                    session_id=self.ctx.session_id,
                    task_id=task_id,
                    cycle=cycle,
                    duration_s=duration,
                    error=exc,
                    worker_id=worker_id,
                    attempts=attempts,
                )
            except Exception as hook_error:  # the task's own error is what the caller must get
                self.rlog.error(
                    "task_failed_hook_failed", task_id=task_id, error=f"{type(hook_error).__name__}: {hook_error}"
                )
                exc.add_note(f"A graflow_task_failed hook raised while reporting this: {hook_error!r}")

    def _advance(self, task_id: str, tctx: TaskExecutionContext) -> bool:
        """Apply what the task asked for, then release its successors. True ends the run."""
        ctx = self.ctx
        put = ctx.queue.put
        if tctx._next_tasks:
            goto = tctx._goto
            for dynamic in tctx._next_tasks:
                if (
                    self._add_dynamic(task_id, dynamic)
                    and not goto
                    and dynamic.task_id in ctx.graph.successors[task_id]
                ):
                    continue  # a static successor: released below after all its predecessors, once
                put(TaskSpec(dynamic.task_id))
        if tctx._control is not None:
            kind, message = tctx._control
            origin = tctx._control_task or task_id
            if kind == "cancel":
                raise WorkflowCancelledError(message, origin)
            self.rlog.info("workflow_terminated", task_id=origin, message=message)
            ctx.queue.clear()
            ctx.completed.add(task_id)
            self._write_checkpoints(tctx)  # the task succeeded: its deferred checkpoint records the end
            return True
        if tctx._iterate is not None:
            put(TaskSpec(task_id, tctx._iterate[0]))
        else:
            ctx.completed.add(task_id)
            if not tctx._goto:
                self._release_successors(task_id)
        self._write_checkpoints(tctx)
        return False

    def _release_successors(self, task_id: str) -> None:
        graph = self.ctx.graph
        waiting = self.ctx.waiting
        put = self.ctx.queue.put
        for succ in graph.successors[task_id]:
            remaining = waiting.get(succ)
            if remaining is None:
                reachable = self.reachable
                remaining = sum(1 for p in graph.predecessors[succ] if p in reachable)
            remaining -= 1
            if remaining <= 0:
                waiting.pop(succ, None)
                put(TaskSpec(succ))
            else:
                waiting[succ] = remaining

    def _add_dynamic(self, parent_id: str, task: Executable) -> bool:
        """Put a ``next_task`` target in the run's graph; True when it is a task of the static graph."""
        graph: TaskGraph = self.ctx.graph
        existing = graph.nodes.get(task.task_id)
        if existing is task:
            return task.task_id not in graph.dynamic
        if existing is not None:
            if task.task_id not in graph.dynamic:
                raise DuplicateTaskError(task.task_id)
            self._replace_dynamic(task)  # a dynamic task re-created with the same id replaces itself
            return False
        task._attach(graph)
        graph.dynamic.add(task.task_id)
        graph.dynamic_edges.append((parent_id, task.task_id))
        self.reachable.add(task.task_id)
        return False

    def _replace_dynamic(self, task: Executable) -> None:
        """A re-created dynamic task or group takes its predecessor's place, its new members too."""
        graph: TaskGraph = self.ctx.graph
        graph.nodes[task.task_id] = task
        if isinstance(task, ParallelGroup):
            task._graph = graph
            for member in task.members:
                current = graph.nodes.get(member.task_id)
                if current is None:
                    graph.add_node(member)
                    graph.dynamic.add(member.task_id)
                    self.reachable.add(member.task_id)
                elif current is not member:
                    if member.task_id not in graph.dynamic:
                        raise DuplicateTaskError(member.task_id)
                    graph.nodes[member.task_id] = member
                graph.add_member(task.task_id, member.task_id)

    def _write_checkpoints(self, tctx: TaskExecutionContext) -> None:
        """The deferred checkpoints the task (or the members of a group) asked for, in order."""
        if not tctx._checkpoints:
            return
        from graflow.checkpoint.manager import CheckpointManager

        for metadata, path in tctx._checkpoints:
            CheckpointManager.create_checkpoint(self.ctx, metadata=metadata, path=path)  # logs checkpoint_created
