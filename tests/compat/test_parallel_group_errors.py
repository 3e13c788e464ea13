"""Compatibility with upstream Graflow 0.2's ``tests/core/test_parallel_group_error_handling.py``
and ``tests/scenario/test_parallel_group_error_handling_scenarios.py`` (GraflowAI/graflow).

``ParallelGroupError`` (built with ``message=``, ``group_id``, ``failed_tasks``,
``successful_tasks``) is a ``GraflowRuntimeError``; ``TaskResult`` is what an upstream-style
policy sees. Upstream's tests that call ``DirectTaskHandler.on_group_finished`` directly test an
internal hook (Graflow's handlers do not judge groups; policies do) and are not ported; the same
judgements run through real groups in ``test_ex10_group_exec_policy.py``.
"""

from __future__ import annotations

import pytest

from graflow.core.decorators import task
from graflow.core.handlers.direct import DirectTaskHandler
from graflow.core.handlers.group_policy import TaskResult
from graflow.core.workflow import workflow
from graflow.exceptions import GraflowRuntimeError, ParallelGroupError


def test_task_result_fields() -> None:
    ok = TaskResult(task_id="test_task", success=True, error_message=None, duration=1.5, timestamp=1234567890.0)
    failed = TaskResult(task_id="failed_task", success=False, error_message="Task failed: division by zero")
    assert (ok.task_id, ok.success, ok.error_message, ok.duration, ok.timestamp) == (
        "test_task",
        True,
        None,
        1.5,
        1234567890.0,
    )
    assert (failed.success, failed.error_message) == (False, "Task failed: division by zero")


def test_parallel_group_error_is_a_runtime_error_with_its_fields() -> None:
    error = ParallelGroupError(
        message="Parallel group failed",
        group_id="group_1",
        failed_tasks=[("task_a", "Error message")],
        successful_tasks=["task_b", "task_c"],
    )
    assert str(error) == "Parallel group failed"
    assert error.group_id == "group_1"
    assert error.failed_tasks == [("task_a", "Error message")]
    assert error.successful_tasks == ["task_b", "task_c"]
    assert isinstance(error, GraflowRuntimeError)


def test_direct_handler_import_path() -> None:
    from graflow.core.handler import DirectTaskHandler as Ours

    assert DirectTaskHandler is Ours


def test_default_strict_group_reports_every_failure() -> None:
    with workflow("strict_default") as wf:

        @task
        def task_a() -> str:
            return "a"

        @task
        def task_b() -> None:
            raise ValueError("Task B failed!")

        @task
        def task_c() -> None:
            raise KeyError("c")

        group = task_a | task_b | task_c
        with pytest.raises(ParallelGroupError) as info:
            wf.execute()
    err = info.value
    assert err.group_id == group.task_id
    assert sorted(t for t, _ in err.failed_tasks) == ["task_b", "task_c"]
    assert err.successful_tasks == ["task_a"]
    assert "Task B failed!" in dict(err.failed_tasks)["task_b"]
