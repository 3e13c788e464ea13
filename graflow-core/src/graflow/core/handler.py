"""TaskHandler: how one task executes. The engine picks one per task by ``@task(handler=name)``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from graflow.core.context import ExecutionContext
    from graflow.core.task import TaskWrapper


class TaskHandler(ABC):
    """Executes a task and returns its result.

    Call ``task.run()`` to run the function with its resolved arguments (in this process), or ship
    it elsewhere. Record the result with ``context.set_result(task.task_id, value)`` or return it:
    when both are absent the result is ``None``. Raise to fail the task.

    Timeouts (``@task(timeout=...)``) need the handler's consent, declared on the class:

    * ``supports_timeout = True``: Graflow may stop waiting for an attempt at its deadline. It runs
      the attempt in a daemon thread (a Python thread cannot be killed: it goes on in the
      background), or, on a worker or in a process pool, in a child process it kills. Right for
      handlers that run the task in this process (``task.run()``).
    * ``enforces_timeout = True`` (implies support): the handler stops the task itself at
      ``task.attempts.timeout`` (e.g. kills its container) and raises ``TaskTimeoutError``; Graflow
      calls it directly.

    A task with a timeout on a handler that declares neither fails when the run starts
    (``TimeoutNotSupportedError``), naming task and handler.
    """

    supports_timeout: ClassVar[bool] = False
    enforces_timeout: ClassVar[bool] = False

    @abstractmethod
    def execute_task(self, task: TaskWrapper, context: ExecutionContext) -> Any:
        """Execute ``task`` within the run ``context`` and return its result."""
        raise NotImplementedError


class DirectTaskHandler(TaskHandler):
    """Runs the function in the calling thread: the default, and the fast path of the engine."""

    supports_timeout = True

    def execute_task(self, task: TaskWrapper, context: ExecutionContext) -> Any:
        return task.run()
