"""Conformance suite for task handlers: subclass it and provide the ``handler`` fixture.

    class TestMyHandler(graflow.testing.HandlerSuite):
        @pytest.fixture
        def handler(self):
            return MyHandler()

Tasks in the suite are module-level, so handlers that ship tasks to another process can import or
pickle them.
"""

from __future__ import annotations

from typing import Any

import pytest

from graflow.core.context import TaskExecutionContext
from graflow.core.decorators import task
from graflow.core.engine import WorkflowEngine
from graflow.core.handler import TaskHandler
from graflow.core.workflow import workflow
from graflow.exceptions import TaskExecutionError

HANDLER_NAME = "under_test"


@task(id="suite_source", handler=HANDLER_NAME)
def suite_source() -> tuple[int, str]:
    return (21, "twenty-one")


@task(id="suite_double", handler=HANDLER_NAME)
def suite_double(suite_source: tuple[int, str]) -> int:
    return suite_source[0] * 2


@task(id="suite_fails", handler=HANDLER_NAME)
def suite_fails() -> None:
    raise ValueError("expected failure from the suite")


@task(id="suite_writes", handler=HANDLER_NAME, inject_context=True)
def suite_writes(context: TaskExecutionContext) -> str:
    channel = context.get_channel()
    channel.set("written_by_handler", {"ok": True})
    channel.increment("counter", 5)
    return str(channel.get("seed"))


@task(id="suite_loops", handler=HANDLER_NAME, inject_context=True)
def suite_loops(context: TaskExecutionContext, n: int = 0) -> int:
    if n < 3:
        context.next_iteration(n + 1)
    return n


class HandlerSuite:
    """Behaviour every handler keeps: results, errors, channel access, iterations."""

    @pytest.fixture
    def handler(self) -> TaskHandler:
        raise NotImplementedError("override the `handler` fixture with the handler under test")

    @pytest.fixture
    def engine(self, handler: TaskHandler) -> WorkflowEngine:
        engine = WorkflowEngine()
        engine.register_handler(HANDLER_NAME, handler)
        return engine

    def test_result_and_argument_flow(self, engine: WorkflowEngine) -> None:
        with workflow("suite_flow") as wf:
            suite_source >> suite_double
        result, ctx = wf.execute(engine=engine, ret_context=True)
        assert result == 42
        assert ctx.get_result("suite_source") == (21, "twenty-one")  # types survive the handler

    def test_failure_keeps_the_original_exception(self, engine: WorkflowEngine) -> None:
        with workflow("suite_fail") as wf:
            wf.add(suite_fails)
        with pytest.raises(TaskExecutionError) as info:
            wf.execute(suite_fails, engine=engine)
        assert info.value.task_id == "suite_fails"
        assert isinstance(info.value.original, ValueError)
        assert "expected failure from the suite" in str(info.value.original)

    def test_channel_reads_and_writes_reach_the_run(self, engine: WorkflowEngine) -> None:
        with workflow("suite_channel") as wf:
            wf.add(suite_writes)
        ctx = wf.create_context("suite_writes", engine=engine)
        ctx.channel.set("seed", "from-host")
        ctx.channel.set("counter", 1)
        assert engine.execute(ctx) == "from-host"
        assert ctx.channel.get("written_by_handler") == {"ok": True}
        assert ctx.channel.get("counter") == 6

    def test_next_iteration_applies_on_the_run(self, engine: WorkflowEngine) -> None:
        with workflow("suite_loop") as wf:
            wf.add(suite_loops)
        result: Any
        result, ctx = wf.execute(suite_loops, engine=engine, ret_context=True)
        assert result == 3
        assert ctx.cycle_counts["suite_loops"] == 4
