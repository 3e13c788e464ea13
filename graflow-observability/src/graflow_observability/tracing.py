"""OpenTelemetry spans from Graflow's lifecycle hooks: one per run, per parallel group, per task attempt.

Span tree of a run (names and attributes in the package README):

* ``graflow.run``: a child of whatever span is current when ``WorkflowEngine.execute`` is called;
* ``graflow.group``: a child of the run, or of the group it is a member of;
* ``graflow.task``: one per attempt, a child of its group (a member) or of the run. A task shipped
  to another process (a Redis worker, a process pool) gets its span *there*, from the trace context
  that ``graflow_remote_context`` put in the payload: a child of the submitter's group span.

Tasks run concurrently in threads, so open spans are kept in dictionaries keyed by ``(run_id,
task_id, cycle)`` (and ``(run_id, group_id)``) under a lock, never in thread-locals. The span of a
task is also made current in the thread that runs it while it runs, so spans the task's own code
starts (or an instrumented HTTP client it calls) are its children.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import attrs
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

import graflow
from graflow_observability._version import VERSION

TRACER_NAME = "graflow"


@attrs.define
class _Open:
    """A span this plugin started and has not ended yet, with what is needed to end it cleanly."""

    span: Span
    token: Any  # from opentelemetry.context.attach, or None
    thread: int  # the thread that attached it: only that thread may detach it
    attempt: int = 1
    members: tuple[str, ...] = ()
    parent: Any = None  # the Context new attempts of the same task start in
    # A retry's attempt opens when its delay starts, stamped with when the delay ends: if it has to
    # end before that (the run ended during the delay), the attempt never ran and gets no span.
    # Monotonic, the clock the retry's wait runs on.
    not_before: int | None = None
    worker_id: str | None = None  # a shipped task's: the worker running it
    attributes: dict[str, Any] = attrs.Factory(dict)  # what the span started with


def _fail(span: Span, error: BaseException) -> None:
    span.record_exception(error)
    span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))


class TracingPlugin:
    """The tracing plugin: ``WorkflowEngine(plugins=[TracingPlugin()])``, or installed (entry point ``otel``).

    ``tracer_provider`` defaults to the global one (``opentelemetry.trace.set_tracer_provider``), so
    exporters are configured the standard OpenTelemetry way. One instance may serve many engines
    and runs at once.
    """

    def __init__(self, tracer_provider: TracerProvider | None = None) -> None:
        self.tracer = trace.get_tracer(TRACER_NAME, VERSION, tracer_provider=tracer_provider)
        self._provider = tracer_provider
        self._propagator = TraceContextTextMapPropagator()
        self._lock = threading.Lock()
        self._runs: dict[str, _Open] = {}
        self._groups: dict[tuple[str, str], _Open] = {}
        self._member_of: dict[tuple[str, str], Span] = {}  # (run_id, member id) -> its group's span
        self._tasks: dict[tuple[str, str, int], _Open] = {}
        self._remote: dict[int, _Open] = {}  # id(context dict) -> span of a shipped task

    # --- helpers -------------------------------------------------------------------------------------

    def _start(self, name: str, parent: Any, attributes: dict[str, Any], start_time: int | None = None) -> _Open:
        span = self.tracer.start_span(
            name, context=parent, kind=SpanKind.INTERNAL, attributes=attributes, start_time=start_time
        )
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        return _Open(span, token, threading.get_ident(), parent=parent, attributes=attributes)

    @staticmethod
    def _end(record: _Open, error: BaseException | None = None) -> None:
        """End the span (one of a retry that never started is dropped) and leave its context."""
        if record.not_before is None or time.monotonic_ns() >= record.not_before:
            if error is not None:
                _fail(record.span, error)
            record.span.end()
        if record.token is not None and record.thread == threading.get_ident():
            otel_context.detach(record.token)
        record.token = None

    def _next_attempt(self, record: _Open, delay_s: float, error: BaseException) -> _Open:
        """End the span of a failed attempt that will be retried; open the next attempt's, current in
        this thread (the retry runs here), starting when the delay is over."""
        record.span.set_attribute("graflow.status", "retrying")
        record.span.set_attribute("graflow.retry_delay_s", delay_s)
        self._end(record, error)
        delay_ns = int(max(0.0, delay_s) * 1e9)
        attributes = {**record.attributes, "graflow.attempt": record.attempt + 1}
        following = self._start("graflow.task", record.parent, attributes, start_time=time.time_ns() + delay_ns)
        following.attempt = record.attempt + 1
        following.not_before = time.monotonic_ns() + delay_ns
        following.worker_id = record.worker_id
        return following

    def _parent_of(self, run_id: str, member_id: str) -> Any:
        """The Context a task or group of this run starts in: its group's span, else the run's."""
        with self._lock:
            return self._parent_locked(run_id, member_id)

    def _parent_locked(self, run_id: str, member_id: str) -> Any:
        group_span = self._member_of.get((run_id, member_id))
        run = self._runs.get(run_id)
        if group_span is not None:
            return trace.set_span_in_context(group_span)
        if run is not None:
            return trace.set_span_in_context(run.span)
        return None  # the current context

    # --- runs ----------------------------------------------------------------------------------------

    @graflow.hookimpl
    def graflow_run_started(self, run_id: str, session_id: str, start_tasks: list[str]) -> None:
        record = self._start(
            "graflow.run",
            None,
            {"graflow.run_id": run_id, "graflow.session_id": session_id, "graflow.start_tasks": list(start_tasks)},
        )
        with self._lock:
            self._runs[run_id] = record

    @graflow.hookimpl
    def graflow_run_finished(
        self, run_id: str, session_id: str, duration_s: float, steps: int, error: BaseException | None
    ) -> None:
        with self._lock:
            record = self._runs.pop(run_id, None)
            # Spans whose end was never reported (KeyboardInterrupt in a task): end them with the run.
            stale = [self._tasks.pop(k) for k in [k for k in self._tasks if k[0] == run_id]]
            stale += [self._groups.pop(k) for k in [k for k in self._groups if k[0] == run_id]]
            for key in [k for k in self._member_of if k[0] == run_id]:
                del self._member_of[key]
        for open_span in stale:
            open_span.span.set_attribute("graflow.status", "abandoned")
            self._end(open_span, error)
        if record is None:
            return
        record.span.set_attribute("graflow.steps", steps)
        record.span.set_attribute("graflow.status", "failed" if error is not None else "succeeded")
        self._end(record, error)

    # --- groups --------------------------------------------------------------------------------------

    @graflow.hookimpl
    def graflow_group_started(
        self, run_id: str, session_id: str, group_id: str, cycle: int, members: list[str], backend: str
    ) -> None:
        record = self._start(
            "graflow.group",
            self._parent_of(run_id, group_id),
            {
                "graflow.run_id": run_id,
                "graflow.session_id": session_id,
                "graflow.group_id": group_id,
                "graflow.cycle": cycle,
                "graflow.members": len(members),
                "graflow.backend": backend,
            },
        )
        record.members = tuple(members)
        with self._lock:
            self._groups[(run_id, group_id)] = record
            for member in members:
                self._member_of[(run_id, member)] = record.span

    @graflow.hookimpl
    def graflow_group_finished(
        self, run_id: str, group_id: str, duration_s: float, error: BaseException | None
    ) -> None:
        with self._lock:
            record = self._groups.pop((run_id, group_id), None)
            if record is not None:
                for member in record.members:
                    if self._member_of.get((run_id, member)) is record.span:
                        del self._member_of[(run_id, member)]
        if record is not None:
            record.span.set_attribute("graflow.status", "failed" if error is not None else "succeeded")
            self._end(record, error)

    # --- task attempts -------------------------------------------------------------------------------

    def _task_attributes(self, run_id: str, session_id: str, task_id: str, cycle: int, attempt: int) -> dict[str, Any]:
        return {
            "graflow.run_id": run_id,
            "graflow.session_id": session_id,
            "graflow.task_id": task_id,
            "graflow.cycle": cycle,
            "graflow.attempt": attempt,
        }

    @graflow.hookimpl
    def graflow_task_started(self, run_id: str, session_id: str, task_id: str, cycle: int) -> None:
        key = (run_id, task_id, cycle)
        with self._lock:
            if key in self._tasks:  # opened by graflow_task_retrying for this next attempt
                return
            parent = self._parent_locked(run_id, task_id)
        record = self._start("graflow.task", parent, self._task_attributes(run_id, session_id, task_id, cycle, 1))
        with self._lock:
            self._tasks[key] = record

    @graflow.hookimpl
    def graflow_task_retrying(
        self,
        run_id: str,
        session_id: str,
        task_id: str,
        cycle: int,
        attempt: int,
        delay_s: float,
        error: BaseException,
    ) -> None:
        key = (run_id, task_id, cycle)
        with self._lock:
            record = self._tasks.pop(key, None)
        if record is None:
            return
        following = self._next_attempt(record, delay_s, error)
        with self._lock:
            self._tasks[key] = following

    def _task_ended(
        self, run_id: str, task_id: str, cycle: int, duration_s: float, error: BaseException | None
    ) -> None:
        with self._lock:
            record = self._tasks.pop((run_id, task_id, cycle), None)
            group_span = self._member_of.get((run_id, task_id)) if record is None else None
        status = "failed" if error is not None else "succeeded"
        if record is None:
            # Reported here, executed elsewhere (a worker's outcome): the span is the executing
            # side's; the group records that the outcome arrived.
            if group_span is not None:
                group_span.add_event(
                    "graflow.member_finished",
                    {"graflow.task_id": task_id, "graflow.cycle": cycle, "graflow.status": status,
                     "graflow.duration_s": duration_s},
                )  # fmt: skip
            return
        record.span.set_attribute("graflow.status", status)
        self._end(record, error)

    @graflow.hookimpl
    def graflow_task_cache_hit(self, run_id: str, task_id: str, cycle: int, key: str) -> None:
        """The task's span says its result came from the cache (its handler did not run)."""
        with self._lock:
            record = self._tasks.get((run_id, task_id, cycle))
        if record is not None:
            record.span.set_attribute("graflow.cache_hit", True)
            record.span.set_attribute("graflow.cache_key", key)

    @graflow.hookimpl
    def graflow_task_succeeded(self, run_id: str, task_id: str, cycle: int, duration_s: float) -> None:
        self._task_ended(run_id, task_id, cycle, duration_s, None)

    @graflow.hookimpl
    def graflow_task_failed(
        self, run_id: str, task_id: str, cycle: int, duration_s: float, error: BaseException
    ) -> None:
        self._task_ended(run_id, task_id, cycle, duration_s, error)

    # --- tasks shipped to another process ------------------------------------------------------------

    @graflow.hookimpl
    def graflow_remote_context(self, run_id: str, group_id: str) -> dict[str, str] | None:
        """The group's span as W3C trace context (``traceparent``, ``tracestate``)."""
        with self._lock:
            group = self._groups.get((run_id, group_id))
            run = self._runs.get(run_id)
        span = group.span if group is not None else run.span if run is not None else trace.get_current_span()
        carrier: dict[str, str] = {}
        self._propagator.inject(carrier, context=trace.set_span_in_context(span))
        return carrier or None

    @graflow.hookimpl
    def graflow_remote_started(
        self, context: dict[str, str], session_id: str, task_id: str, cycle: int, worker_id: str | None, handler: str
    ) -> None:
        parent = self._propagator.extract(carrier=context)
        attributes: dict[str, Any] = {
            "graflow.session_id": session_id,
            "graflow.task_id": task_id,
            "graflow.cycle": cycle,
            "graflow.attempt": 1,
            "graflow.handler": handler,
            "graflow.remote": True,
        }
        if worker_id is not None:
            attributes["graflow.worker_id"] = worker_id
        record = self._start("graflow.task", parent, attributes)
        record.worker_id = worker_id
        with self._lock:
            self._remote[id(context)] = record

    @graflow.hookimpl
    def graflow_remote_retrying(self, context: dict[str, str], delay_s: float, error: BaseException) -> None:
        """One span per attempt on the executing side too: this one ends, the next one opens."""
        with self._lock:
            record = self._remote.pop(id(context), None)
        if record is None:
            return
        following = self._next_attempt(record, delay_s, error)
        with self._lock:
            self._remote[id(context)] = following

    @graflow.hookimpl
    def graflow_remote_finished(
        self, context: dict[str, str], error: BaseException | None, cache_hit: str | None
    ) -> None:
        with self._lock:
            record = self._remote.pop(id(context), None)
        if record is not None:
            if cache_hit is not None:
                record.span.set_attribute("graflow.cache_hit", True)
                record.span.set_attribute("graflow.cache_key", cache_hit)
            record.span.set_attribute("graflow.status", "failed" if error is not None else "succeeded")
            self._end(record, error)

    @graflow.hookimpl
    def graflow_remote_attempt_started(self, context: dict[str, str]) -> None:
        """In the child process of a timed attempt: the parent's attempt span becomes current (no span
        of its own: the parent reports the attempt), so the task's own spans are its children. Left
        attached: the child runs this one attempt and exits."""
        otel_context.attach(self._propagator.extract(carrier=context))

    # --- workers -------------------------------------------------------------------------------------

    @graflow.hookimpl
    def graflow_worker_stopped(self, worker_id: str) -> None:
        """Tasks still running when the worker stopped were given back (graceful shutdown timeout):
        their spans end now, marked ``released``, and everything is exported before the process
        exits."""
        with self._lock:
            released = [k for k, r in self._remote.items() if r.worker_id == worker_id]
            records = [self._remote.pop(k) for k in released]
        for record in records:
            record.span.set_attribute("graflow.status", "released")
            record.span.add_event("graflow.released", {"graflow.worker_id": worker_id})
            self._end(record)
        provider = self._provider if self._provider is not None else trace.get_tracer_provider()
        flush = getattr(provider, "force_flush", None)
        if flush is not None:
            flush()
