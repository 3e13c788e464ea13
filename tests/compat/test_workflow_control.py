"""Compatibility with upstream Graflow 0.2's ``tests/scenario/test_workflow_control_scenarios.py``
and ``tests/core/test_workflow_control.py`` (GraflowAI/graflow): ``terminate_workflow`` (a normal
early end: the task completes, nothing else runs) and ``cancel_workflow``
(``GraflowWorkflowCanceledError`` naming the task; the task does not complete), on hand-built
``TaskGraph``s run with ``context.execute()`` and on workflows run with
``WorkflowEngine().execute(ExecutionContext.create(wf.graph))``. Runs unchanged.
"""

from __future__ import annotations

import itertools

import pytest

from graflow.core.context import ExecutionContext
from graflow.core.decorators import task
from graflow.core.graph import TaskGraph
from graflow.core.task import TaskWrapper
from graflow.exceptions import GraflowWorkflowCanceledError


def _pipeline(*tasks: TaskWrapper) -> TaskGraph:
    graph = TaskGraph()
    for t in tasks:
        graph.add_node(t, t.task_id)
    for a, b in itertools.pairwise(tasks):
        graph.add_edge(a.task_id, b.task_id)
    return graph


def _logging_task(task_id: str, log: list[str]) -> TaskWrapper:
    @task(task_id)
    def step() -> str:
        log.append(task_id)
        return f"{task_id}_done"

    return step


@pytest.mark.parametrize("cache_hit", [True, False])
def test_cache_hit_terminates_cache_miss_runs_everything(cache_hit: bool) -> None:
    log: list[str] = []

    @task("check_cache", inject_context=True)
    def check_cache(task_ctx: object) -> object:
        log.append("check_cache")
        if cache_hit:
            task_ctx.terminate_workflow("Cache hit - skipping fetch and transform")  # type: ignore[attr-defined]
            return {"result": "cached_value"}
        return None

    graph = _pipeline(check_cache, _logging_task("fetch_data", log), _logging_task("transform_data", log))
    context = ExecutionContext.create(graph, "check_cache", max_steps=10)
    context.execute()
    if cache_hit:
        assert log == ["check_cache"]
        assert context.completed_tasks == ["check_cache"]
        assert context.get_result("check_cache") == {"result": "cached_value"}
    else:
        assert log == ["check_cache", "fetch_data", "transform_data"]
        assert context.completed_tasks == ["check_cache", "fetch_data", "transform_data"]


def test_validation_failure_cancels_the_workflow() -> None:
    log: list[str] = []

    @task("prepare_data")
    def prepare_data() -> dict[str, str]:
        log.append("prepare_data")
        return {"data": "prepared"}

    @task("check_integrity", inject_context=True)
    def check_integrity(task_ctx: object) -> str:
        log.append("check_integrity")
        task_ctx.cancel_workflow("Data integrity check failed - aborting workflow")  # type: ignore[attr-defined]
        return "integrity_ok"

    graph = _pipeline(prepare_data, check_integrity, _logging_task("process_data", log))
    context = ExecutionContext.create(graph, "prepare_data", max_steps=10)
    with pytest.raises(GraflowWorkflowCanceledError) as info:
        context.execute()
    assert info.value.task_id == "check_integrity"
    assert "integrity" in str(info.value).lower()
    assert "prepare_data" in context.completed_tasks
    assert "check_integrity" not in context.completed_tasks
    assert log == ["prepare_data", "check_integrity"]


def test_termination_decided_from_the_channel() -> None:
    log: list[str] = []

    @task("check_status", inject_context=True)
    def check_status(task_ctx: object) -> str:
        log.append("check_status")
        if task_ctx.get_channel().get("workflow_status", "PENDING") == "COMPLETED":  # type: ignore[attr-defined]
            task_ctx.terminate_workflow("Workflow already completed")  # type: ignore[attr-defined]
            return "already_done"
        return "needs_processing"

    graph = _pipeline(check_status, _logging_task("process_step1", log), _logging_task("process_step2", log))
    for status, expected in (
        ("COMPLETED", ["check_status"]),
        ("PENDING", ["check_status", "process_step1", "process_step2"]),
    ):
        log.clear()
        context = ExecutionContext.create(graph, "check_status", max_steps=10)
        context.get_channel().set("workflow_status", status)
        context.execute()
        assert log == expected


def test_termination_in_one_branch_stops_the_join() -> None:
    log: list[str] = []

    @task("branch_a", inject_context=True)
    def branch_a(task_ctx: object) -> str:
        log.append("branch_a")
        task_ctx.terminate_workflow("Branch A completes early")  # type: ignore[attr-defined]
        return "branch_a_done"

    graph = TaskGraph()
    for t in (_logging_task("start_task", log), branch_a, _logging_task("branch_b", log), _logging_task("final", log)):
        graph.add_node(t, t.task_id)
    for a, b in (("start_task", "branch_a"), ("start_task", "branch_b"), ("branch_a", "final"), ("branch_b", "final")):
        graph.add_edge(a, b)
    ExecutionContext.create(graph, "start_task", max_steps=10).execute()
    assert "start_task" in log and "final" not in log


def test_cancel_wins_over_terminate_in_the_same_task() -> None:
    log: list[str] = []

    @task("task_cancel", inject_context=True)
    def task_cancel(task_ctx: object) -> str:
        log.append("task_cancel")
        task_ctx.cancel_workflow("Canceling")  # type: ignore[attr-defined]
        task_ctx.terminate_workflow("This should not take effect")  # type: ignore[attr-defined]
        return "done"

    context = ExecutionContext.create(_pipeline(task_cancel, _logging_task("after", log)), "task_cancel", max_steps=10)
    with pytest.raises(GraflowWorkflowCanceledError):
        context.execute()
    assert log == ["task_cancel"]
    assert "task_cancel" not in context.completed_tasks


def test_a_members_cancel_wins_over_another_members_terminate() -> None:
    """Regression (found by this suite): the last request used to win, so a terminate from one
    member could turn another member's cancel into a successful end."""
    from graflow.coordination.coordinator import CoordinationBackend
    from graflow.core.workflow import workflow

    with workflow("group_control") as wf:

        @task("canceller", inject_context=True)
        def canceller(task_ctx: object) -> None:
            task_ctx.cancel_workflow("stop everything")  # type: ignore[attr-defined]

        @task("terminator", inject_context=True)
        def terminator(task_ctx: object) -> None:
            task_ctx.terminate_workflow("done early")  # type: ignore[attr-defined]

        # DIRECT runs members in order: the terminate is settled after the cancel.
        (canceller | terminator).with_execution(backend=CoordinationBackend.DIRECT)
        with pytest.raises(GraflowWorkflowCanceledError) as info:
            wf.execute()
    assert info.value.task_id == "canceller"


@pytest.mark.parametrize("kind", ["terminate", "cancel"])
def test_control_from_a_workflow_run_by_the_engine(kind: str) -> None:
    from graflow.core.engine import WorkflowEngine
    from graflow.core.workflow import workflow

    executed: list[str] = []
    with workflow(f"{kind}_test") as wf:

        @task(inject_context=True)
        def task_a(context: object) -> str:
            executed.append("task_a")
            getattr(context, f"{kind}_workflow")(f"{kind} - condition met")
            return "a_result"

        @task
        def task_b() -> None:
            executed.append("task_b")

        task_a >> task_b
        exec_context = ExecutionContext.create(wf.graph)
        if kind == "terminate":
            WorkflowEngine().execute(exec_context)
        else:
            with pytest.raises(GraflowWorkflowCanceledError) as info:
                WorkflowEngine().execute(exec_context)
            assert info.value.task_id == "task_a"
    assert executed == ["task_a"]
    assert ("task_a" in exec_context.completed_tasks) is (kind == "terminate")
