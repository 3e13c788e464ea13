"""Spans from local runs, read back from the OpenTelemetry SDK's in-memory exporter."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

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
