"""Error policies of parallel groups, ParallelGroupError, and failures of tasks outside groups."""

from __future__ import annotations

import traceback
from collections.abc import Sequence
from typing import Any

import pytest

from graflow import (
    CoordinationBackend,
    ErrorHandlingPolicy,
    ParallelGroupError,
    TaskExecutionContext,
    TaskWrapper,
    WorkflowEngine,
    hookimpl,
    task,
    workflow,
)
from graflow.core.workflow import Workflow
from graflow.exceptions import ExecutionError, GraflowError, TaskExecutionError, UnknownNameError


class SourceUnavailable(ConnectionError):
    pass


def ok(task_id: str) -> TaskWrapper:
    return TaskWrapper(task_id, lambda: f"{task_id} ok")


def failing(task_id: str, exc: BaseException | None = None) -> TaskWrapper:
    def body() -> None:
        raise exc if exc is not None else SourceUnavailable(f"{task_id} is down")

    return TaskWrapper(task_id, body)


def group_workflow(members: Sequence[TaskWrapper], policy: Any = None, backend: Any = None) -> Workflow:
    """``members`` as one group named "grp", followed by ``after`` that returns the group's result."""
    with workflow("policy") as wf:
        group = members[0]
        for member in members[1:]:
            group = group | member  # type: ignore[assignment]
        group = group.set_group_name("grp")  # type: ignore[attr-defined]
        if isinstance(policy, tuple):  # (registered name, options)
            group = group.with_policy(policy[0], **policy[1])
        elif policy is not None:
            group = group.with_policy(policy)
        if backend is not None:
            group = group.with_execution(backend=backend)

        @task
        def after(grp: dict[str, Any]) -> dict[str, Any]:
            return grp

        group >> after
    return wf


def test_strict_is_the_default_and_any_failure_fails_the_group() -> None:
    wf = group_workflow([ok("a"), failing("b"), ok("c")])
    with pytest.raises(ParallelGroupError) as info:
        wf.execute()
    error = info.value
    assert error.group_id == "grp"
    assert error.failed_tasks == [("b", "SourceUnavailable: b is down")]
    assert sorted(error.successful_tasks) == ["a", "c"]
    assert set(error.errors) == {"b"}
    assert isinstance(error.errors["b"], SourceUnavailable)
    assert str(error.errors["b"]) == "b is down"
    assert "grp" in str(error) and "strict" in str(error)
    assert isinstance(error, ExecutionError) and isinstance(error, GraflowError)
    assert wf.last_context is not None and "after" not in wf.last_context.results


def test_explicit_strict_policy() -> None:
    with pytest.raises(ParallelGroupError):
        group_workflow([ok("a"), failing("b")], ErrorHandlingPolicy.STRICT).execute()


@pytest.mark.parametrize("backend", [CoordinationBackend.DIRECT, CoordinationBackend.THREADING])
def test_errors_keep_the_original_exception_objects(backend: CoordinationBackend) -> None:
    boom = KeyError("missing-key")
    wf = group_workflow([failing("a", boom), failing("b"), ok("c")], backend=backend)
    with pytest.raises(ParallelGroupError) as info:
        wf.execute()
    assert info.value.errors["a"] is boom
    assert isinstance(info.value.errors["b"], SourceUnavailable)
    assert sorted(t for t, _ in info.value.failed_tasks) == ["a", "b"]
    assert info.value.successful_tasks == ["c"]


def test_multiprocessing_failure_keeps_the_exception_type_and_remote_traceback() -> None:
    def explode() -> None:
        raise ValueError("bad input in child")

    wf = group_workflow(
        [TaskWrapper("child_fail", explode), ok("child_ok")], backend=CoordinationBackend.MULTIPROCESSING
    )
    with pytest.raises(ParallelGroupError) as info:
        wf.execute()
    error = info.value.errors["child_fail"]
    assert type(error) is ValueError and str(error) == "bad input in child"
    assert any("explode" in note for note in getattr(error, "__notes__", []))
    assert info.value.successful_tasks == ["child_ok"]


def test_best_effort_continues_with_the_successful_results() -> None:
    wf = group_workflow([ok("a"), failing("b"), failing("c")], ErrorHandlingPolicy.BEST_EFFORT)
    assert wf.execute() == {"a": "a ok"}


def test_best_effort_with_every_member_failing_still_continues() -> None:
    wf = group_workflow([failing("a"), failing("b")], ErrorHandlingPolicy.BEST_EFFORT)
    assert wf.execute() == {}


def test_at_least_n_passes_when_enough_members_succeed() -> None:
    wf = group_workflow([ok("a"), failing("b"), ok("c")], ErrorHandlingPolicy.AT_LEAST_N(n=2))
    assert wf.execute() == {"a": "a ok", "c": "c ok"}


def test_at_least_n_fails_when_too_few_succeed() -> None:
    wf = group_workflow([ok("a"), failing("b"), failing("c")], ErrorHandlingPolicy.AT_LEAST_N(n=2))
    with pytest.raises(ParallelGroupError, match=r"at_least_n\(n=2\)") as info:
        wf.execute()
    assert info.value.successful_tasks == ["a"]


def test_critical_tasks_fail_the_group_only_when_a_critical_member_fails() -> None:
    policy = ErrorHandlingPolicy.CRITICAL_TASKS(["task_a"])
    tolerated = group_workflow([ok("task_a"), failing("task_b"), failing("task_c")], policy)
    assert tolerated.execute() == {"task_a": "task_a ok"}
    fatal = group_workflow([failing("task_a"), ok("task_b")], policy)
    with pytest.raises(ParallelGroupError) as info:
        fatal.execute()
    assert info.value.failed_tasks[0][0] == "task_a"


def test_custom_policy_subclass_decides_with_failed_and_successful_lists() -> None:
    calls: list[tuple[list[tuple[str, str]], list[str]]] = []

    class MajorityPolicy(ErrorHandlingPolicy):
        def should_fail(self, failed_tasks: Any, successful_tasks: Any) -> bool:
            calls.append((list(failed_tasks), sorted(successful_tasks)))  # completion order varies
            return len(failed_tasks) > len(successful_tasks)

    assert group_workflow([ok("a"), ok("b"), failing("c")], MajorityPolicy()).execute() == {
        "a": "a ok",
        "b": "b ok",
    }
    assert calls[-1] == ([("c", "SourceUnavailable: c is down")], ["a", "b"])
    with pytest.raises(ParallelGroupError):
        group_workflow([ok("a"), failing("b"), failing("c")], MajorityPolicy()).execute()


def test_policy_is_not_consulted_when_nothing_failed() -> None:
    class Exploding(ErrorHandlingPolicy):
        def should_fail(self, failed_tasks: Any, successful_tasks: Any) -> bool:
            raise AssertionError("should not be called")

    assert group_workflow([ok("a"), ok("b")], Exploding()).execute() == {"a": "a ok", "b": "b ok"}


@pytest.mark.parametrize(
    ("name", "options", "fails"),
    [
        ("best_effort", {}, False),
        ("at_least_n", {"n": 2}, False),
        ("at_least_n", {"n": 3}, True),
        ("critical_tasks", {"critical_task_ids": ["b"]}, True),
        ("critical_tasks", {"critical_task_ids": ["a"]}, False),
        ("strict", {}, True),
    ],
)
def test_policy_by_registered_name(name: str, options: dict[str, Any], fails: bool) -> None:
    wf = group_workflow([ok("a"), failing("b"), ok("c")], (name, options))
    if fails:
        with pytest.raises(ParallelGroupError):
            wf.execute()
    else:
        assert wf.execute() == {"a": "a ok", "c": "c ok"}


class MajorityPlugin:
    @staticmethod
    @hookimpl
    def graflow_register_policies(register: Any) -> None:
        class Majority(ErrorHandlingPolicy):
            name = "majority"

            def should_fail(self, failed_tasks: Any, successful_tasks: Any) -> bool:
                return len(failed_tasks) * 2 > len(failed_tasks) + len(successful_tasks)

        register("majority", Majority)


def test_policy_name_from_a_plugin() -> None:
    engine = WorkflowEngine(plugins=[MajorityPlugin])
    passing = group_workflow([ok("a"), ok("b"), failing("c")], ("majority", {}))
    assert passing.execute(engine=engine) == {"a": "a ok", "b": "b ok"}
    failing_wf = group_workflow([ok("a"), failing("b"), failing("c")], ("majority", {}))
    with pytest.raises(ParallelGroupError, match="majority"):
        failing_wf.execute(engine=engine)


def test_unknown_policy_name_fails_even_when_no_member_fails() -> None:
    wf = group_workflow([ok("a"), ok("b")], ("most_of_them", {}))
    with pytest.raises(UnknownNameError, match="no policy named 'most_of_them'") as info:
        wf.execute()
    assert {"strict", "best_effort", "at_least_n", "critical_tasks"} <= set(info.value.available)


def test_policy_arguments_are_validated() -> None:
    with pytest.raises(ValueError, match="n >= 1"):
        ErrorHandlingPolicy.AT_LEAST_N(n=0)
    with pytest.raises(ValueError, match="at least one"):
        ErrorHandlingPolicy.CRITICAL_TASKS([])
    with workflow("typecheck"):
        group = ok("a") | ok("b")
        with pytest.raises(TypeError, match="ErrorHandlingPolicy or a policy name"):
            group.with_policy(42)  # type: ignore[arg-type]


def test_failed_members_do_not_stop_the_others_before_the_barrier() -> None:
    log: list[str] = []
    with workflow("barrier_on_failure") as wf:
        (failing("first") | TaskWrapper("second", lambda: log.append("second"))).with_execution(
            backend=CoordinationBackend.DIRECT
        )
    with pytest.raises(ParallelGroupError) as info:
        wf.execute()
    assert log == ["second"]
    assert info.value.successful_tasks == ["second"]


def test_member_exceeding_max_cycles_is_a_member_failure() -> None:
    @task(inject_context=True, max_cycles=3)
    def spinner(ctx: TaskExecutionContext) -> None:
        ctx.next_iteration()

    wf = group_workflow([spinner, ok("b")], ErrorHandlingPolicy.BEST_EFFORT)
    assert wf.execute() == {"b": "b ok"}


# --- a failing task outside a group ----------------------------------------------------------------


def test_failing_task_error_names_the_task_and_keeps_the_original() -> None:
    original = ZeroDivisionError("division by zero in step")

    def compute() -> None:
        raise original

    with workflow("fail") as wf:
        TaskWrapper("compute", compute) >> ok("never")
    with pytest.raises(TaskExecutionError) as info:
        wf.execute()
    error = info.value
    assert error.task_id == "compute"
    assert error.original is original
    assert error.__cause__ is original
    assert "'compute'" in str(error) and "ZeroDivisionError" in str(error) and "division by zero" in str(error)
    frames = [frame.name for frame in traceback.extract_tb(original.__traceback__)]
    assert "compute" in frames
    assert wf.last_context is not None and "never" not in wf.last_context.results


def test_failing_task_error_is_a_graflow_error() -> None:
    with workflow("fail2") as wf:
        failing("x", RuntimeError("nope"))
    with pytest.raises(GraflowError):
        wf.execute()


@pytest.mark.parametrize("backend", [CoordinationBackend.THREADING, CoordinationBackend.MULTIPROCESSING])
def test_a_member_that_failed_this_round_leaves_no_result_from_the_last(backend: CoordinationBackend) -> None:
    """Best effort goes on without the member: its previous cycle's result must not stand in for it."""

    def fetch_api(round_no: int) -> str:
        if round_no == 2:
            raise ConnectionError("api down")  # a builtin: this module cannot be imported by a spawned process
        return f"api-round{round_no}"

    @task(inject_context=True)
    def driver(ctx: TaskExecutionContext, round_no: int = 1) -> int:
        ctx.get_channel().set("round_no", round_no)
        return round_no

    def api(ctx: TaskExecutionContext) -> str:
        return fetch_api(ctx.get_channel().get("round_no"))

    def db(ctx: TaskExecutionContext) -> str:
        return f"db-round{ctx.get_channel().get('round_no')}"

    seen: list[tuple[Any, Any]] = []

    with workflow(f"stale_{backend}") as wf:
        sources = TaskWrapper("fetch_db", db, inject_context=True) | TaskWrapper("fetch_api", api, inject_context=True)
        sources.with_execution(backend=backend, max_workers=2).with_policy(ErrorHandlingPolicy.BEST_EFFORT)

        @task(inject_context=True)
        def aggregate(ctx: TaskExecutionContext, fetch_db: str, fetch_api: str | None = None) -> None:
            seen.append((fetch_db, fetch_api))
            round_no = ctx.get_channel().get("round_no")
            if round_no < 2:
                ctx.get_channel().set("round_no", round_no + 1)
                ctx.next_task(sources, goto=True)

        driver >> sources >> aggregate
    wf.execute()
    assert seen == [("db-round1", "api-round1"), ("db-round2", None)]


def test_a_failed_group_chains_the_first_member_error_as_its_cause() -> None:
    """The member's traceback is printed with the ParallelGroupError (its __cause__)."""
    wf = group_workflow([ok("fine"), failing("down")])
    with pytest.raises(ParallelGroupError) as info:
        wf.execute()
    cause = info.value.__cause__
    assert isinstance(cause, SourceUnavailable) and str(cause) == "down is down"
    printed = "".join(traceback.format_exception(info.value))
    assert "in body" in printed and "direct cause" in printed
