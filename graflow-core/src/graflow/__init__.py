"""Graflow: plain functions as tasks, wired with ``>>`` and ``|``, run locally or on a fleet."""

from graflow.channels.typed import TypedChannel
from graflow.coordination.base import CoordinationBackend
from graflow.core.context import ExecutionContext, TaskExecutionContext
from graflow.core.decorators import task
from graflow.core.engine import WorkflowEngine
from graflow.core.handler import TaskHandler
from graflow.core.task import ParallelGroup, TaskWrapper
from graflow.core.workflow import Workflow, workflow
from graflow.exceptions import GraflowError, ParallelGroupError
from graflow.hookspecs import hookimpl
from graflow.logs import apply_environment as _apply_log_environment
from graflow.policies import ErrorHandlingPolicy

_apply_log_environment()  # GRAFLOW_LOG_LEVEL=info shows the run events on stderr

__all__ = [
    "CoordinationBackend",
    "ErrorHandlingPolicy",
    "ExecutionContext",
    "GraflowError",
    "ParallelGroup",
    "ParallelGroupError",
    "TaskExecutionContext",
    "TaskHandler",
    "TaskWrapper",
    "TypedChannel",
    "Workflow",
    "WorkflowEngine",
    "hookimpl",
    "task",
    "workflow",
]
