"""Compatibility with upstream Graflow 0.2's ``examples/10_group_exec_policy`` (GraflowAI/graflow),
called ``examples/11_error_handling`` in earlier upstream versions.

Follows ``parallel_group_strict_mode.py``, ``parallel_group_best_effort.py``,
``parallel_group_at_least_n.py``, ``parallel_group_critical_tasks.py`` and
``parallel_group_custom_policy.py``: ``group.with_execution(backend=CoordinationBackend.THREADING,
policy=...)`` with a policy name, ``AtLeastNGroupPolicy(min_success=N)``,
``CriticalGroupPolicy(critical_task_ids=[...])`` or a ``GroupExecutionPolicy`` subclass whose
``on_group_finished`` raises ``ParallelGroupError``. Runs unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

from graflow.coordination.coordinator import CoordinationBackend
from graflow.core.context import ExecutionContext
from graflow.core.decorators import task
from graflow.core.engine import WorkflowEngine
from graflow.core.handlers.group_policy import AtLeastNGroupPolicy, CriticalGroupPolicy, GroupExecutionPolicy
from graflow.core.task import TaskWrapper
from graflow.core.workflow import workflow
from graflow.exceptions import GraflowRuntimeError, ParallelGroupError

THREADING = CoordinationBackend.THREADING


def _members(outcomes: dict[str, str | None]) -> list[TaskWrapper]:
    """One task per id: returns the value, or raises RuntimeError when it is None."""

    def make(task_id: str, value: str | None) -> TaskWrapper:
        @task(id=task_id)
        def member() -> str:
            if value is None:
                raise RuntimeError(f"{task_id} failed")
            return value

        return member

    return [make(t, v) for t, v in outcomes.items()]


def _group(members: list[TaskWrapper]) -> Any:
    group = members[0] | members[1]
    for member in members[2:]:
        group = group | member
    return group


def test_strict_mode_any_failure_fails_the_group_and_skips_successors() -> None:
    ran: list[str] = []
    with workflow("strict") as wf:
        group = _group(_members({"load_a": "a", "load_b": None, "load_c": "c"})).with_execution(backend=THREADING)

        @task
        def combine() -> None:
            ran.append("combine")

        group >> combine
        with pytest.raises(ParallelGroupError) as info:
            WorkflowEngine().execute(ExecutionContext.create(wf.graph, group.task_id))
    err = info.value
    assert isinstance(err, GraflowRuntimeError)
    assert err.group_id == group.task_id
    assert [t for t, _ in err.failed_tasks] == ["load_b"]
    assert sorted(err.successful_tasks) == ["load_a", "load_c"]
    assert ran == []


def test_best_effort_runs_the_successor_with_the_successful_results() -> None:
    with workflow("best_effort") as wf:
        group = _group(_members({"fetch_a": "a", "fetch_b": None, "fetch_c": "c"})).with_execution(
            backend=THREADING, policy="best_effort"
        )

        @task(inject_context=True)
        def summarize(context: Any) -> list[str]:
            return [context.get_result(t, default=None) for t in ("fetch_a", "fetch_b", "fetch_c")]

        group >> summarize
        context = ExecutionContext.create(wf.graph, group.task_id)
        WorkflowEngine().execute(context)
    assert context.get_result("summarize") == ["a", None, "c"]


@pytest.mark.parametrize(("threshold", "passes"), [(1, True), (2, True), (3, False), (4, False)])
def test_at_least_n_thresholds(threshold: int, passes: bool) -> None:
    with workflow(f"scenario_{threshold}") as wf:
        group = _group(_members({"op_1": "ok", "op_2": "ok", "op_3": None, "op_4": None})).with_execution(
            backend=THREADING, policy=AtLeastNGroupPolicy(min_success=threshold)
        )

        @task
        def update_load_balancer() -> str:
            return "load_balancer_updated"

        group >> update_load_balancer
        context = ExecutionContext.create(wf.graph, group.task_id)
        if passes:
            WorkflowEngine().execute(context)
            assert context.get_result("update_load_balancer") == "load_balancer_updated"
        else:
            with pytest.raises(ParallelGroupError) as info:
                WorkflowEngine().execute(context)
            assert len(info.value.failed_tasks) == 2
            assert len(info.value.successful_tasks) == 2


def test_critical_tasks_only_critical_failures_fail_the_group() -> None:
    with workflow("critical_ok") as wf:
        group = _group(_members({"charge": "ok", "reserve": "ok", "notify": None})).with_execution(
            backend=THREADING, policy=CriticalGroupPolicy(critical_task_ids=["charge", "reserve"])
        )
        WorkflowEngine().execute(ExecutionContext.create(wf.graph, group.task_id))

    with workflow("critical_fails") as wf:
        group = _group(_members({"charge": None, "reserve": "ok", "notify": "ok"})).with_execution(
            backend=THREADING, policy=CriticalGroupPolicy(critical_task_ids=["charge"])
        )
        with pytest.raises(ParallelGroupError) as info:
            WorkflowEngine().execute(ExecutionContext.create(wf.graph, group.task_id))
    assert [t for t, _ in info.value.failed_tasks] == ["charge"]


class CriticalLimitedFailuresPolicy(GroupExecutionPolicy):
    """Upstream's custom-policy example: critical members must succeed, at most N failures overall."""

    def __init__(self, critical_task_ids: Iterable[str], max_failures: int) -> None:
        self._critical = frozenset(critical_task_ids)
        self.max_failures = max_failures

    def get_name(self) -> str:
        return "critical_limited_failures"

    def on_group_finished(self, group_id: str, tasks: Any, results: Any, context: Any) -> None:
        self._validate_group_results(group_id, tasks, results)
        successful, failed = self._partition_group_results(results)
        failed_critical = [(t, results[t].error_message) for t in self._critical if not results[t].success]
        if failed_critical:
            raise ParallelGroupError(
                f"Critical tasks failed: {[t for t, _ in failed_critical]}",
                group_id=group_id,
                failed_tasks=failed_critical,
                successful_tasks=successful,
            )
        if len(failed) > self.max_failures:
            raise ParallelGroupError(
                f"Too many task failures ({len(failed)} > {self.max_failures})",
                group_id=group_id,
                failed_tasks=failed,
                successful_tasks=successful,
            )


class PercentageSuccessPolicy(GroupExecutionPolicy):
    def __init__(self, min_percentage: float) -> None:
        self.min_percentage = min_percentage

    def on_group_finished(self, group_id: str, tasks: Any, results: Any, context: Any) -> None:
        rate = sum(1 for r in results.values() if r.success) / len(results)
        if rate < self.min_percentage:
            raise ParallelGroupError(
                f"Success rate {rate:.1%} < {self.min_percentage:.1%}",
                group_id=group_id,
                failed_tasks=[(t, r.error_message) for t, r in results.items() if not r.success],
                successful_tasks=[t for t, r in results.items() if r.success],
            )


def test_custom_policy_rejects_a_group_over_its_failure_budget() -> None:
    with workflow("custom_policy_failure") as wf:
        group = _group(_members({"primary_task": "ok", "optional_a": None, "optional_b": None})).with_execution(
            backend=THREADING,
            policy=CriticalLimitedFailuresPolicy(critical_task_ids=["primary_task"], max_failures=1),
        )
        with pytest.raises(ParallelGroupError) as info:
            WorkflowEngine().execute(ExecutionContext.create(wf.graph, group.task_id))
    assert "Too many task failures (2 > 1)" in str(info.value)
    assert sorted(info.value.failed_tasks) == [("optional_a", "optional_a failed"), ("optional_b", "optional_b failed")]
    assert info.value.group_id == group.task_id


def test_custom_policy_lets_a_group_within_budget_go_on() -> None:
    with workflow("percentage_threshold") as wf:
        group = _group(_members({"worker_1": "c", "worker_2": "c", "worker_3": "c", "worker_4": None})).with_execution(
            backend=THREADING, policy=PercentageSuccessPolicy(min_percentage=0.70)
        )

        @task
        def aggregate_results() -> str:
            return "aggregation_complete"

        group >> aggregate_results
        context = ExecutionContext.create(wf.graph, group.task_id)
        WorkflowEngine().execute(context)
    assert context.get_result("aggregate_results") == "aggregation_complete"
