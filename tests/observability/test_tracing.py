"""Spans from local runs, read back from the OpenTelemetry SDK's in-memory exporter."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from graflow import ParallelGroup, TaskExecutionContext, TaskWrapper, WorkflowEngine, hookimpl, task, workflow
from graflow.coordination.base import GroupCoordinator, MemberOutcome, MemberRun, MemberRunner
from graflow.core import remote
from graflow.exceptions import TaskExecutionError
from graflow.plugins import manager
from graflow.plugins.manager import PluginHost
from graflow_observability import TracingPlugin


def spans(exporter: InMemorySpanExporter, name: str | None = None) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if name is None or s.name == name]


def by_task(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    return {str(s.attributes["graflow.task_id"]): s for s in spans(exporter, "graflow.task")}  # type: ignore[index]


def parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def no_open_spans(plugin: TracingPlugin) -> bool:
    return not (plugin._runs or plugin._groups or plugin._tasks or plugin._member_of or plugin._remote)


def test_a_run_and_its_tasks_get_spans(provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
    with workflow("two") as wf:
        TaskWrapper("a", lambda: 1) >> TaskWrapper("b", lambda: 2)
    plugin = TracingPlugin(provider)
    engine = WorkflowEngine(plugins=[plugin])
    context = wf.create_context(engine=engine)
    assert engine.execute(context) == 2
    (run,) = spans(exporter, "graflow.run")
    assert run.attributes is not None
    assert run.attributes["graflow.session_id"] == context.session_id
    assert run.attributes["graflow.steps"] == 2 and run.attributes["graflow.status"] == "succeeded"
    assert run.status.status_code is StatusCode.UNSET and run.parent is None
    tasks = by_task(exporter)
    assert set(tasks) == {"a", "b"}
    for span in tasks.values():
        assert span.attributes is not None
        assert span.context.trace_id == run.context.trace_id and parent_id(span) == run.context.span_id
        assert span.attributes["graflow.run_id"] == run.attributes["graflow.run_id"]
        assert (span.attributes["graflow.cycle"], span.attributes["graflow.attempt"]) == (1, 1)
        assert span.attributes["graflow.status"] == "succeeded"
    assert tasks["a"].end_time <= tasks["b"].start_time  # type: ignore[operator]
    assert no_open_spans(plugin)


def test_a_failing_task_records_its_error(provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
    def broken() -> None:
        raise ValueError("bad input 42")

    with workflow("fails") as wf:
        TaskWrapper("ok", lambda: 1) >> TaskWrapper("broken", broken)
    with pytest.raises(TaskExecutionError) as raised:
        wf.execute(engine=WorkflowEngine(plugins=[TracingPlugin(provider)]))
    assert isinstance(raised.value.original, ValueError)  # tracing takes nothing from the caller
    span = by_task(exporter)["broken"]
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "ValueError: bad input 42"
    (event,) = span.events
    assert event.name == "exception" and event.attributes is not None
    assert event.attributes["exception.type"] == "ValueError"
    assert event.attributes["exception.message"] == "bad input 42"
    assert by_task(exporter)["ok"].status.status_code is StatusCode.UNSET
    (run,) = spans(exporter, "graflow.run")
    assert run.status.status_code is StatusCode.ERROR and run.attributes["graflow.status"] == "failed"  # type: ignore[index]


def test_group_members_are_children_of_their_group(provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
    with workflow("fan-out") as wf:
        inner = ParallelGroup([TaskWrapper("i1", lambda: 1), TaskWrapper("i2", lambda: 2)], name="inner")
        members = [TaskWrapper(f"m{i}", lambda: 0) for i in range(20)]
        outer = ParallelGroup([*members, inner.with_execution("direct")], name="outer").with_execution(
            "threading", max_workers=8
        )
        TaskWrapper("first", lambda: 0) >> outer >> TaskWrapper("last", lambda: 0)
    plugin = TracingPlugin(provider)
    wf.execute(engine=WorkflowEngine(plugins=[plugin]))
    (run,) = spans(exporter, "graflow.run")
    groups = {s.attributes["graflow.group_id"]: s for s in spans(exporter, "graflow.group")}  # type: ignore[index]
    assert parent_id(groups["outer"]) == run.context.span_id
    assert parent_id(groups["inner"]) == groups["outer"].context.span_id
    assert groups["outer"].attributes["graflow.members"] == 21  # type: ignore[index]
    assert groups["outer"].attributes["graflow.backend"] == "threading"  # type: ignore[index]
    tasks = by_task(exporter)
    assert len(tasks) == 24
    for i in range(20):
        assert parent_id(tasks[f"m{i}"]) == groups["outer"].context.span_id
    assert parent_id(tasks["i1"]) == parent_id(tasks["i2"]) == groups["inner"].context.span_id
    assert parent_id(tasks["first"]) == parent_id(tasks["last"]) == run.context.span_id
    assert {s.context.trace_id for s in spans(exporter)} == {run.context.trace_id}
    assert no_open_spans(plugin)


def test_each_iteration_gets_a_span(provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
    with workflow("loop") as wf:

        @task(inject_context=True)
        def loop(ctx: TaskExecutionContext) -> int:
            if ctx.cycle_count < 3:
                ctx.next_iteration()
            return ctx.cycle_count

    wf.execute(engine=WorkflowEngine(plugins=[TracingPlugin(provider)]))
    cycles = sorted(s.attributes["graflow.cycle"] for s in spans(exporter, "graflow.task"))  # type: ignore[index]
    assert cycles == [1, 2, 3]


def test_spans_of_task_code_are_children_of_the_task(provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
    tracer = trace.get_tracer("user-code", tracer_provider=provider)

    def work() -> int:
        with tracer.start_as_current_span("user.query"):
            return 1

    with workflow("nested") as wf:
        TaskWrapper("work", work)
    with tracer.start_as_current_span("caller") as caller:
        wf.execute(engine=WorkflowEngine(plugins=[TracingPlugin(provider)]))
    (run,) = spans(exporter, "graflow.run")
    (user,) = spans(exporter, "user.query")
    assert parent_id(run) == caller.get_span_context().span_id  # a run joins the caller's trace
    assert parent_id(user) == by_task(exporter)["work"].context.span_id
    assert trace.get_current_span() is trace.INVALID_SPAN  # everything attached was detached


def test_concurrent_runs_keep_their_spans_apart(provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
    plugin = TracingPlugin(provider)
    engine = WorkflowEngine(plugins=[plugin])
    barrier = threading.Barrier(4)

    def one_run() -> None:
        def wait() -> int:
            barrier.wait(timeout=30)  # all four runs are inside a task at the same time
            return 1

        with workflow("same-ids") as wf:
            TaskWrapper("a", wait) >> TaskWrapper("b", lambda: 2)
        wf.execute(engine=engine)

    threads = [threading.Thread(target=one_run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    runs = {s.context.span_id: s for s in spans(exporter, "graflow.run")}
    assert len(runs) == 4
    tasks = spans(exporter, "graflow.task")
    assert len(tasks) == 8
    for span in tasks:
        owner = runs[parent_id(span)]  # type: ignore[index]
        assert span.attributes["graflow.run_id"] == owner.attributes["graflow.run_id"]  # type: ignore[index]
    assert no_open_spans(plugin)


def test_each_retry_attempt_gets_a_span(provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
    """The attempt spans the retry feature's hooks produce (called here as the engine calls them)."""
    plugin = TracingPlugin(provider)
    where = {"run_id": "r1", "session_id": "s1", "task_id": "flaky", "cycle": 1}
    plugin.graflow_run_started(run_id="r1", session_id="s1", start_tasks=["flaky"])
    plugin.graflow_task_started(**where)
    plugin.graflow_task_retrying(**where, attempt=1, delay_s=0.25, error=OSError("timeout"))
    time.sleep(0.25)  # the retry delay, waited out as the attempt loop does
    plugin.graflow_task_started(**where)  # if the engine reports each attempt's start, nothing doubles
    plugin.graflow_task_retrying(**where, attempt=2, delay_s=0.0, error=OSError("again"))
    plugin.graflow_task_succeeded(run_id="r1", task_id="flaky", cycle=1, duration_s=0.1)
    plugin.graflow_run_finished(run_id="r1", session_id="s1", duration_s=1.0, steps=1, error=None)
    attempts = sorted(spans(exporter, "graflow.task"), key=lambda s: s.attributes["graflow.attempt"])  # type: ignore[arg-type,index,return-value]
    assert [s.attributes["graflow.attempt"] for s in attempts] == [1, 2, 3]  # type: ignore[index]
    assert [s.status.status_code for s in attempts] == [StatusCode.ERROR, StatusCode.ERROR, StatusCode.UNSET]
    assert attempts[0].events[0].attributes["exception.message"] == "timeout"  # type: ignore[index]
    assert attempts[0].attributes["graflow.retry_delay_s"] == 0.25  # type: ignore[index]
    assert attempts[1].start_time >= attempts[0].end_time + 250_000_000  # type: ignore[operator]
    (run,) = spans(exporter, "graflow.run")
    assert {parent_id(s) for s in attempts} == {run.context.span_id}
    assert no_open_spans(plugin)


class ShippingCoordinator(GroupCoordinator):
    """Ships each member as another process would get it: a signed payload run by ``run_request``."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.outcomes: list[MemberOutcome] = []

    def open(self, runner: MemberRunner) -> None:
        self.runner = runner

    def submit(self, runs: Sequence[MemberRun]) -> None:
        for run in runs:
            payload = remote.dumps_request(self.runner.build_request(run), key=b"secret")
            received = remote.loads_request(payload, key=b"secret")
            self.outcomes.append(remote.run_request(received, worker_id="worker-7"))

    def collect(self, timeout: float | None = None) -> list[MemberOutcome]:
        outcomes, self.outcomes = self.outcomes, []
        return outcomes


class Shipping:
    @staticmethod
    @hookimpl
    def graflow_register_coordinators(register: Any) -> None:
        register("shipping", ShippingCoordinator)


def test_a_shipped_task_is_a_child_of_the_group_span(
    provider: TracerProvider, exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    plugin = TracingPlugin(provider)
    monkeypatch.setenv("GRAFLOW_LOAD_PLUGINS", "")
    monkeypatch.setattr(manager, "_default_host", PluginHost([plugin]))  # the far side's plugins

    def bad() -> None:
        raise RuntimeError("far away")

    with workflow("shipped") as wf:
        members = [TaskWrapper("far", lambda: 1), TaskWrapper("bad", bad)]
        ParallelGroup(members, name="g").with_execution("shipping").with_policy("best_effort")
    try:
        wf.execute(engine=WorkflowEngine(plugins=[plugin, Shipping]))
    finally:
        manager.reset_default_host()
    (group,) = spans(exporter, "graflow.group")
    tasks = by_task(exporter)
    for span in tasks.values():
        assert span.context.trace_id == group.context.trace_id and parent_id(span) == group.context.span_id
        assert span.attributes["graflow.worker_id"] == "worker-7" and span.attributes["graflow.handler"] == "direct"  # type: ignore[index]
        assert span.attributes["graflow.remote"] is True  # type: ignore[index]
    assert tasks["bad"].status.status_code is StatusCode.ERROR
    finished = {e.attributes["graflow.task_id"]: e.attributes["graflow.status"] for e in group.events}  # type: ignore[index]
    assert finished == {"far": "succeeded", "bad": "failed"}  # outcomes as the submitter received them
    assert no_open_spans(plugin)


def test_a_retry_abandoned_during_its_delay_gets_no_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """The group gives up while a member waits out its retry delay: attempt 2 never starts, so it has
    no span, and no span ends before it starts."""
    plugin = TracingPlugin(provider)

    @task(retries=1, retry_delay=30.0)
    def flaky() -> None:
        raise OSError("down")

    with workflow("abandoned") as wf:
        ParallelGroup([flaky, TaskWrapper("x", lambda: 1)], name="g").with_execution("threading", group_timeout=0.3)
    with pytest.raises(Exception, match="timed out"):
        wf.execute(engine=WorkflowEngine(plugins=[plugin]))
    finished = exporter.get_finished_spans()
    assert all(s.end_time >= s.start_time for s in finished)  # type: ignore[operator]
    attempts = [s for s in spans(exporter, "graflow.task") if s.attributes["graflow.task_id"] == "flaky"]  # type: ignore[index]
    assert [(s.attributes["graflow.attempt"], s.attributes["graflow.status"]) for s in attempts] == [(1, "retrying")]  # type: ignore[index]
    assert no_open_spans(plugin)


def test_a_retried_shipped_task_gets_a_span_per_attempt(
    provider: TracerProvider, exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Retries on a worker or in a pool process run there: each attempt its own span, all children of
    the submitter's group span, and the task's own spans children of their attempt's."""
    plugin = TracingPlugin(provider)
    monkeypatch.setenv("GRAFLOW_LOAD_PLUGINS", "")
    monkeypatch.setattr(manager, "_default_host", PluginHost([plugin]))  # the executing side's plugins
    calls: list[int] = []

    @task(retries=2, retry_delay=0.0)
    def flaky() -> int:
        calls.append(1)
        with trace.get_tracer("app", tracer_provider=provider).start_as_current_span("inner"):
            if len(calls) < 3:
                raise OSError(f"attempt {len(calls)}")
        return 7

    group = provider.get_tracer("t").start_span("submitter-group")
    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier, context=trace.set_span_in_context(group))
    request = remote.RemoteRequest(session_id="s", task=flaky, cycle=1, kwargs={}, context=carrier)
    outcome = remote.run_request(request, worker_id="w1")
    group.end()
    assert outcome.error is None and outcome.result == 7 and outcome.attempts == 3
    attempts = spans(exporter, "graflow.task")
    assert [s.attributes["graflow.attempt"] for s in attempts] == [1, 2, 3]  # type: ignore[index]
    assert [s.attributes["graflow.status"] for s in attempts] == ["retrying", "retrying", "succeeded"]  # type: ignore[index]
    assert all(s.attributes["graflow.worker_id"] == "w1" for s in attempts)  # type: ignore[index]
    assert {parent_id(s) for s in attempts} == {group.context.span_id}
    inner = spans(exporter, "inner")
    assert [parent_id(s) for s in inner] == [s.context.span_id for s in attempts]
    assert no_open_spans(plugin)


def test_a_worker_runs_a_request_from_a_sender_without_the_newer_fields(
    provider: TracerProvider, exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A submitter on an older graflow-core (same version number) pickled a RemoteRequest without the
    fields added since: a tracing worker runs it with their defaults."""
    plugin = TracingPlugin(provider)
    monkeypatch.setenv("GRAFLOW_LOAD_PLUGINS", "")
    monkeypatch.setattr(manager, "_default_host", PluginHost([plugin]))
    newer = ("context", "cache_config", "default_attempts", "attempt")
    current = remote.RemoteRequest.__getstate__

    def older_getstate(self: remote.RemoteRequest) -> dict[str, Any]:
        return {k: v for k, v in current(self).items() if k not in newer}

    request = remote.RemoteRequest(session_id="s", task=TaskWrapper("plain", lambda: 1), cycle=1, kwargs={})
    monkeypatch.setattr(remote.RemoteRequest, "__getstate__", older_getstate)
    payload = remote.dumps_request(request)
    monkeypatch.setattr(remote.RemoteRequest, "__getstate__", current)
    received = remote.loads_request(payload)
    assert (received.context, received.cache_config, received.default_attempts, received.attempt) == ({}, None, None, 1)
    outcome = remote.run_request(received, worker_id="w1")
    assert outcome.error is None and outcome.result == 1
    (span,) = spans(exporter, "graflow.task")
    assert span.attributes["graflow.status"] == "succeeded"  # type: ignore[index]


def test_a_remote_cache_hit_is_marked_on_its_span(provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
    plugin = TracingPlugin(provider)
    where = {"session_id": "s", "task_id": "t", "cycle": 1, "worker_id": "w1"}
    hit: dict[str, str] = {}
    miss: dict[str, str] = {}
    plugin.graflow_remote_started(context=hit, **where, handler="direct")
    plugin.graflow_remote_finished(context=hit, error=None, cache_hit="t:abc")
    plugin.graflow_remote_started(context=miss, **where, handler="direct")
    plugin.graflow_remote_finished(context=miss, error=None, cache_hit=None)
    first, second = spans(exporter, "graflow.task")
    assert (first.attributes["graflow.cache_hit"], first.attributes["graflow.cache_key"]) == (True, "t:abc")  # type: ignore[index]
    assert "graflow.cache_hit" not in second.attributes  # type: ignore[operator]


def test_spans_of_a_task_still_running_when_its_worker_stops_end_released(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """A task given back at a graceful shutdown's timeout keeps running until the process exits: its
    span ends when the worker stops (other workers' tasks in the process go on)."""
    plugin = TracingPlugin(provider)
    held: dict[str, str] = {}
    other: dict[str, str] = {}
    plugin.graflow_remote_started(
        context=held, session_id="s", task_id="slow", cycle=1, worker_id="w1", handler="direct"
    )
    plugin.graflow_remote_started(context=other, session_id="s", task_id="b", cycle=1, worker_id="w2", handler="direct")
    plugin.graflow_worker_stopped(worker_id="w1")
    (released,) = spans(exporter, "graflow.task")
    assert released.attributes["graflow.task_id"] == "slow" and released.attributes["graflow.status"] == "released"  # type: ignore[index]
    plugin.graflow_remote_finished(context=held, error=None, cache_hit=None)  # the slot finished later: no 2nd span
    plugin.graflow_remote_finished(context=other, error=None, cache_hit=None)
    assert [s.attributes["graflow.task_id"] for s in spans(exporter, "graflow.task")] == ["slow", "b"]  # type: ignore[index]
    assert no_open_spans(plugin)


@pytest.mark.slow
def test_spans_of_a_timed_shipped_task_are_children_of_its_attempt_span(
    provider: TracerProvider, exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A task with a timeout on a worker runs each attempt in a child process: the task's own spans
    (exported there) are children of the attempt's span (exported here), in the same trace."""
    monkeypatch.setenv("GRAFLOW_LOAD_PLUGINS", "")
    monkeypatch.setattr(manager, "_default_host", PluginHost([TracingPlugin(provider)]))  # the worker's
    # The child (a fresh process, with this environment) loads tracing the installed way.
    monkeypatch.setenv("GRAFLOW_LOAD_PLUGINS", "otel")
    monkeypatch.setenv("GRAFLOW_OTEL_EXPORTER", f"file:{tmp_path}/child-{{pid}}.jsonl")
    monkeypatch.setenv("GRAFLOW_ATTEMPT_START_METHOD", "spawn")

    @task(timeout=60)
    def traced() -> int:
        from opentelemetry import trace as child_trace

        with child_trace.get_tracer("app").start_as_current_span("inner"):
            return 1

    outcome = remote.run_request(remote.RemoteRequest(session_id="s", task=traced, cycle=1, kwargs={}), worker_id="w")
    assert outcome.error is None and outcome.result == 1
    (attempt,) = spans(exporter, "graflow.task")
    child = [json.loads(line) for p in tmp_path.glob("child-*.jsonl") for line in p.read_text().splitlines()]
    assert [s["name"] for s in child] == ["inner"]  # no span of the attempt's own in the child
    assert child[0]["parent_id"] == format(attempt.context.span_id, "#018x")
    assert child[0]["context"]["trace_id"] == format(attempt.context.trace_id, "#034x")
