"""Upstream Graflow 0.2's group policies, on top of :mod:`graflow.policies` (issue 12).

Code written for upstream imports ``AtLeastNGroupPolicy(min_success=2)``,
``CriticalGroupPolicy(critical_task_ids=[...])``, ``StrictGroupPolicy`` and ``BestEffortGroupPolicy``
from here and passes them to ``group.with_execution(policy=...)``. A custom upstream policy
subclasses :class:`GroupExecutionPolicy` and implements ``on_group_finished``, raising
``ParallelGroupError`` to fail the group; it is called when members failed (an all-success group
needs no verdict).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import attrs

from graflow.exceptions import ParallelGroupError
from graflow.policies import AtLeastNPolicy, BestEffortPolicy, CriticalTasksPolicy, ErrorHandlingPolicy, StrictPolicy

if TYPE_CHECKING:
    from graflow.core.context import ExecutionContext
    from graflow.core.task import Executable, ParallelGroup

__all__ = [
    "AtLeastNGroupPolicy",
    "BestEffortGroupPolicy",
    "CriticalGroupPolicy",
    "GroupExecutionPolicy",
    "StrictGroupPolicy",
    "TaskResult",
]


@attrs.frozen
class TaskResult:
    """One member's outcome as an upstream policy sees it."""

    task_id: str
    success: bool
    error_message: str | None = None
    duration: float = 0.0
    timestamp: float = 0.0


class GroupExecutionPolicy(ErrorHandlingPolicy):
    """Base of upstream-style custom policies: implement :meth:`on_group_finished`."""

    def get_name(self) -> str:
        return type(self).__name__

    def describe(self) -> str:
        return self.get_name()

    def on_group_finished(
        self,
        group_id: str,
        tasks: Sequence[Executable],
        results: dict[str, TaskResult],
        context: ExecutionContext,
    ) -> None:
        """Raise ``ParallelGroupError`` to fail the group; return to let the run go on."""
        raise NotImplementedError(f"{type(self).__name__} must implement on_group_finished()")

    def check_group(
        self,
        group: ParallelGroup,
        errors: Mapping[str, BaseException],
        successful_tasks: Sequence[str],
        context: ExecutionContext,
    ) -> bool:
        results = {task_id: TaskResult(task_id, True) for task_id in successful_tasks}
        for task_id, exc in errors.items():
            results[task_id] = TaskResult(task_id, False, str(exc))
        self.on_group_finished(group.task_id, list(group.members), results, context)
        return False

    def _validate_group_results(
        self, group_id: str, tasks: Sequence[Executable], results: Mapping[str, TaskResult]
    ) -> None:
        expected = {t.task_id for t in tasks}
        if expected != set(results):
            missing, extra = sorted(expected - set(results)), sorted(set(results) - expected)
            raise ParallelGroupError(
                f"parallel group {group_id!r}: results do not match its members "
                f"(missing results for tasks: {missing}; unexpected: {extra})",
                group_id=group_id,
                failed_tasks=[],
                successful_tasks=sorted(set(results)),
            )

    def _partition_group_results(self, results: Mapping[str, TaskResult]) -> tuple[list[str], list[tuple[str, str]]]:
        ok = [t for t, r in results.items() if r.success]
        failed = [(t, r.error_message or "Unknown error") for t, r in results.items() if not r.success]
        return ok, failed


class StrictGroupPolicy(StrictPolicy):
    """Any failure fails the group (the default)."""

    def get_name(self) -> str:
        return "strict"


class BestEffortGroupPolicy(BestEffortPolicy):
    """Failures are logged; the run goes on with the members that succeeded."""

    def get_name(self) -> str:
        return "best_effort"


class AtLeastNGroupPolicy(AtLeastNPolicy):
    """The group succeeds when at least ``min_success`` members succeeded."""

    def __init__(self, min_success: int) -> None:
        super().__init__(min_success)
        self.min_success = min_success

    def get_name(self) -> str:
        return f"at_least_{self.min_success}"


class CriticalGroupPolicy(CriticalTasksPolicy):
    """The group fails only when one of ``critical_task_ids`` failed."""

    def __init__(self, critical_task_ids: Iterable[str]) -> None:
        super().__init__(critical_task_ids)

    @property
    def critical_task_ids(self) -> list[str]:
        return sorted(self.critical)

    def get_name(self) -> str:
        return "critical"
