"""Compatibility with upstream Graflow 0.2's ``examples/04_execution`` (GraflowAI/graflow).

Follows ``direct_handler.py`` (the default and explicit ``handler="direct"``), ``custom_handler.py``
(``TaskHandler`` subclasses that call ``task.run()`` and ``context.set_result`` and return nothing,
registered with ``engine.register_handler``; a failing task reaches the caller; also upstream's
``tests/scenario/test_custom_handler_workflow.py``) and
``docker_handler.py`` (``from graflow.core.handlers.docker import DockerTaskHandler``; needs the
graflow-docker package and a Docker engine, marked ``docker``).
"""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

from graflow.core.context import ExecutionContext
from graflow.core.decorators import task
from graflow.core.engine import WorkflowEngine
from graflow.core.handler import TaskHandler
from graflow.core.task import Executable, TaskWrapper
from graflow.core.workflow import workflow
from graflow.exceptions import GraflowRuntimeError


def test_direct_handler_default_and_explicit() -> None:
    with workflow("direct_handler_demo") as ctx:

        @task
        def task_default() -> str:
            return "default_result"

        @task(handler="direct")
        def task_explicit() -> str:
            return "explicit_result"

        @task(handler="direct")
        def task_performance() -> int:
            a, b = 0, 1
            for _ in range(30):
                a, b = b, a + b
            return a

        task_default >> task_explicit >> task_performance
        assert ctx.execute("task_default") == 832040
    assert task_default.handler == "direct"
    assert TaskWrapper("lowlevel", lambda: 1, handler_type="docker", register_to_context=False).handler == "docker"


class LoggingHandler(TaskHandler):
    """Upstream's shape: run the task, store the result, return nothing; store the error and re-raise."""

    def __init__(self) -> None:
        self.log: list[str] = []

    def execute_task(self, task: Executable, context: ExecutionContext) -> None:  # type: ignore[override]
        self.log.append(f"start {task.task_id}")
        try:
            result = task.run()  # type: ignore[attr-defined]
        except Exception as exc:
            self.log.append(f"failed {task.task_id}: {exc}")
            context.set_result(task.task_id, exc)
            raise
        self.log.append(f"done {task.task_id}")
        context.set_result(task.task_id, result)


class TimingHandler(TaskHandler):
    def __init__(self) -> None:
        self.durations: dict[str, float] = {}

    def execute_task(self, task: Executable, context: ExecutionContext) -> None:  # type: ignore[override]
        start = time.perf_counter()
        result = task.run()  # type: ignore[attr-defined]
        self.durations[task.task_id] = time.perf_counter() - start
        context.set_result(task.task_id, result)


def test_custom_handlers_registered_on_the_engine() -> None:
    logging_handler, timing_handler = LoggingHandler(), TimingHandler()
    with workflow("custom_handler_demo") as ctx:

        @task(handler="direct")
        def normal_task() -> str:
            return "normal_result"

        @task(handler="logging")
        def custom_task() -> str:
            return "custom_result"

        @task(handler="timing")
        def timed_task() -> str:
            return "timed_result"

        @task(handler="direct", inject_context=True)
        def results_task(context: Any) -> dict[str, Any]:
            return {
                "normal": context.get_result("normal_task"),
                "custom": context.get_result("custom_task"),
                "timed": context.get_result("timed_task"),
            }

        normal_task >> custom_task >> timed_task >> results_task
        engine = WorkflowEngine()
        engine.register_handler("logging", logging_handler)
        engine.register_handler("timing", timing_handler)
        exec_context = ExecutionContext.create(ctx.graph, "normal_task", max_steps=10)
        engine.execute(exec_context)

    assert exec_context.get_result("results_task") == {
        "normal": "normal_result",
        "custom": "custom_result",
        "timed": "timed_result",
    }
    assert logging_handler.log == ["start custom_task", "done custom_task"]
    assert set(timing_handler.durations) == {"timed_task"}
    assert exec_context.steps == 4  # as upstream's tests/scenario/test_custom_handler_workflow.py


def test_custom_handler_failure_reaches_the_caller_as_a_runtime_error() -> None:
    handler = LoggingHandler()
    with workflow("failing") as ctx:

        @task(handler="logging")
        def broken() -> None:
            raise ValueError("boom")

        engine = WorkflowEngine()
        engine.register_handler("logging", handler)
        with pytest.raises(GraflowRuntimeError) as info:
            engine.execute(ExecutionContext.create(ctx.graph, "broken"))
    assert isinstance(info.value.cause, ValueError)  # type: ignore[attr-defined]
    assert handler.log == ["start broken", "failed broken: boom"]


@pytest.mark.docker
@pytest.mark.slow
def test_docker_handler_runs_a_task_in_a_container(docker_image: str) -> None:
    from graflow.core.handlers.docker import DockerTaskHandler

    with workflow("docker_demo") as ctx:

        @task(handler="direct")
        def task_local() -> int:
            return os.getpid()

        @task(handler="docker")
        def task_docker() -> str:
            return "docker_result"

        @task(handler="direct", inject_context=True)
        def compare_results(context: Any) -> dict[str, Any]:
            return {"local": context.get_result("task_local"), "docker": context.get_result("task_docker")}

        task_local >> task_docker >> compare_results
        engine = WorkflowEngine()
        engine.register_handler("docker", DockerTaskHandler(image=docker_image))
        result = engine.execute(ExecutionContext.create(ctx.graph, "task_local", max_steps=10))
    assert result == {"local": os.getpid(), "docker": "docker_result"}
