"""Error policies: what a failed member means for its parallel group."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from graflow.core.context import ExecutionContext
    from graflow.core.task import ParallelGroup

FailedTasks = Sequence[tuple[str, str]]


class ErrorHandlingPolicy:
    """Decides whether a parallel group failed, once every member has finished.

    Subclass and override :meth:`should_fail`. Built-ins: ``ErrorHandlingPolicy.STRICT`` (default),
    ``.BEST_EFFORT``, ``.AT_LEAST_N(n=2)``, ``.CRITICAL_TASKS(["a"])``.
    """

    name = "custom"

    STRICT: ClassVar[ErrorHandlingPolicy]
    BEST_EFFORT: ClassVar[ErrorHandlingPolicy]
    AT_LEAST_N: ClassVar[type[AtLeastNPolicy]]
    CRITICAL_TASKS: ClassVar[type[CriticalTasksPolicy]]

    def should_fail(self, failed_tasks: FailedTasks, successful_tasks: Sequence[str]) -> bool:
        """``failed_tasks`` is ``[(task_id, error message)]``; return True to raise ParallelGroupError."""
        return bool(failed_tasks)

    def check_group(
        self,
        group: ParallelGroup,
        errors: Mapping[str, BaseException],
        successful_tasks: Sequence[str],
        context: ExecutionContext,
    ) -> bool:
        """What the engine asks when members failed: :meth:`should_fail` with each error as
        ``"Type: message"``. Override this instead when the decision needs the group itself, the
        exceptions or the run (upstream Graflow 0.2's ``on_group_finished`` policies do)."""
        failed = [(task_id, f"{type(exc).__name__}: {exc}") for task_id, exc in errors.items()]
        return self.should_fail(failed, successful_tasks)

    def describe(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"<ErrorHandlingPolicy {self.describe()}>"


class StrictPolicy(ErrorHandlingPolicy):
    """Any failure fails the group."""

    name = "strict"


class BestEffortPolicy(ErrorHandlingPolicy):
    """Failures are ignored; successors see the successful members' results."""

    name = "best_effort"

    def should_fail(self, failed_tasks: FailedTasks, successful_tasks: Sequence[str]) -> bool:
        return False


class AtLeastNPolicy(ErrorHandlingPolicy):
    """The group succeeds when at least ``n`` members succeeded."""

    name = "at_least_n"

    def __init__(self, n: int) -> None:
        if n < 1:
            raise ValueError(f"AT_LEAST_N needs n >= 1, got {n}")
        self.n = n

    def should_fail(self, failed_tasks: FailedTasks, successful_tasks: Sequence[str]) -> bool:
        return len(successful_tasks) < self.n

    def describe(self) -> str:
        return f"at_least_n(n={self.n})"


class CriticalTasksPolicy(ErrorHandlingPolicy):
    """The group fails only when one of the named critical members failed."""

    name = "critical_tasks"

    def __init__(self, critical_task_ids: Iterable[str]) -> None:
        self.critical = frozenset(critical_task_ids)
        if not self.critical:
            raise ValueError("CRITICAL_TASKS needs at least one task id")

    def should_fail(self, failed_tasks: FailedTasks, successful_tasks: Sequence[str]) -> bool:
        return any(task_id in self.critical for task_id, _ in failed_tasks)

    def describe(self) -> str:
        return f"critical_tasks({sorted(self.critical)})"


class NamedPolicy(ErrorHandlingPolicy):
    """A policy chosen by registered name; the engine resolves it through the plugins when it runs."""

    def __init__(self, policy_name: str, options: dict[str, Any]) -> None:
        self.policy_name = policy_name
        self.options = options
        self.name = policy_name

    def should_fail(self, failed_tasks: FailedTasks, successful_tasks: Sequence[str]) -> bool:
        raise RuntimeError("NamedPolicy must be resolved by the engine before use")


ErrorHandlingPolicy.STRICT = StrictPolicy()
ErrorHandlingPolicy.BEST_EFFORT = BestEffortPolicy()
ErrorHandlingPolicy.AT_LEAST_N = AtLeastNPolicy
ErrorHandlingPolicy.CRITICAL_TASKS = CriticalTasksPolicy
