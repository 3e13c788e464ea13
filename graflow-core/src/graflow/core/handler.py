"""TaskHandler: how one task executes. The engine picks one per task by ``@task(handler=name)``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from graflow.core.context import ExecutionContext
    from graflow.core.task import TaskWrapper


class TaskHandler(ABC):
    """Executes a task and returns its result.

    Call ``task.run()`` to run the function with its resolved arguments (in this process), or ship
    it elsewhere. Record the result with ``context.set_result(task.task_id, value)`` or return it:
    when both are absent the result is ``None``. Raise to fail the task.
    """

    @abstractmethod
    def execute_task(self, task: TaskWrapper, context: ExecutionContext) -> Any:
        """Execute ``task`` within the run ``context`` and return its result."""
        raise NotImplementedError


class DirectTaskHandler(TaskHandler):
    """Runs the function in the calling thread: the default, and the fast path of the engine."""

    def execute_task(self, task: TaskWrapper, context: ExecutionContext) -> Any:
        return task.run()
