"""Every error Graflow raises, under one root: ``GraflowError``.

Each class also inherits the builtin it behaves like (``LookupError``, ``ValueError``, ...) so that
``except KeyError`` style code keeps working, and keeps its data as attributes so callers never parse
messages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class GraflowError(Exception):
    """Root of every Graflow error.

    Picklable with its attributes and notes although subclasses take their own ``__init__``
    arguments: errors travel back from worker processes inside task outcomes.
    """

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_error, (type(self), self.args, self.__dict__))


def _rebuild_error(cls: type[GraflowError], args: tuple[object, ...], state: dict[str, object]) -> GraflowError:
    try:
        error = cls.__new__(cls)
    except TypeError:
        # Two builtin bases with different layouts (TaskTimeoutError: RuntimeError and TimeoutError,
        # an OSError): only the larger one's __new__ is safe; the first builtin base that accepts wins.
        error = _builtin_new(cls)
    error.args = args
    error.__dict__.update(state)
    return error


def _builtin_new(cls: type[GraflowError]) -> GraflowError:
    for base in cls.__mro__:
        if base.__module__ == "builtins" and base is not object:
            try:
                made: GraflowError = base.__new__(cls)  # type: ignore[call-overload]
            except TypeError:
                continue
            return made
    raise TypeError(f"cannot rebuild {cls.__name__} after pickling")


# --- plugins and names -----------------------------------------------------------------------------


class UnknownNameError(GraflowError, LookupError):
    """A handler, backend, policy or checkpoint scheme was asked for by a name nobody registered."""

    def __init__(self, kind: str, name: str, available: Sequence[str], hint: str = "") -> None:
        self.kind = kind
        self.name = name
        self.available = sorted(available)
        listing = ", ".join(self.available) or "(none)"
        message = f"no {kind} named {name!r}; installed: {listing}."
        if hint:
            message += f" {hint}"
        message += " Run `graflow plugins` to see what each package provides."
        super().__init__(message)

    def __str__(self) -> str:  # LookupError would otherwise quote the message like a KeyError
        return str(self.args[0])


class DuplicateNameError(GraflowError, ValueError):
    """Two plugins registered the same name for the same kind of thing."""


class PluginVersionWarning(UserWarning):
    """A plugin package was built for another range of graflow-core."""


# --- building workflows ------------------------------------------------------------------------------


class GraphError(GraflowError, ValueError):
    """The workflow graph is malformed."""


class GraphCycleError(GraphError):
    """Static edges (``>>``) form a cycle; loops must use ``next_iteration()`` instead."""

    def __init__(self, cycle: Sequence[str]) -> None:
        self.cycle = list(cycle)
        path = " >> ".join([*self.cycle, self.cycle[0]])
        super().__init__(
            f"cycle in static edges: {path}. Static edges must form a DAG; "
            "to loop, call context.next_iteration() inside the task (or next_task(..., goto=True))."
        )


class DuplicateTaskError(GraphError):
    """Two different tasks share one task id inside a workflow."""

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        super().__init__(
            f"duplicate task id {task_id!r}: another task with this id is already in the workflow. "
            f"Give one of them a unique id, e.g. @task(id='{task_id}_2') or TaskWrapper('{task_id}_2', fn)."
        )


class TaskNotFoundError(GraflowError, LookupError):
    """A task id was referenced that is not in the graph."""

    def __init__(self, task_id: str, available: Sequence[str] = ()) -> None:
        self.task_id = task_id
        shown = ", ".join(sorted(available)[:20])
        more = "" if len(available) <= 20 else f" (+{len(available) - 20} more)"
        super().__init__(f"no task {task_id!r} in the workflow graph; tasks: {shown}{more}")

    def __str__(self) -> str:
        return str(self.args[0])


# --- running -----------------------------------------------------------------------------------------


class ExecutionError(GraflowError, RuntimeError):
    """A run stopped because something went wrong while executing it."""


class TaskExecutionError(ExecutionError):
    """A task raised. The original exception is ``original`` (also ``__cause__``), with its traceback."""

    def __init__(self, task_id: str, original: BaseException) -> None:
        self.task_id = task_id
        self.original = original
        super().__init__(f"task {task_id!r} failed: {type(original).__name__}: {original}")

    @property
    def cause(self) -> BaseException:
        """The task's own exception, under upstream Graflow 0.2's name for it."""
        return self.original


class MissingParameterError(ExecutionError, TypeError):
    """A task parameter has no value from explicit arguments, iteration data, results or the channel."""

    def __init__(self, task_id: str, parameter: str, candidates: Sequence[str] = ()) -> None:
        self.task_id = task_id
        self.parameter = parameter
        super().__init__(
            f"task {task_id!r}: no value for parameter {parameter!r}. A parameter is filled from, in order: "
            "explicit arguments, next_iteration() data, the result of a task with that id, the channel key "
            "of that name, its default. Give it a default, bind it with TaskWrapper(..., kwargs={...}), or "
            f"set channel key {parameter!r} before this task runs."
        )


class MaxStepsExceededError(ExecutionError):
    """The run executed ``max_steps`` tasks without finishing: usually a loop that never ends."""

    def __init__(self, max_steps: int, last_task: str | None) -> None:
        self.max_steps = max_steps
        self.last_task = last_task
        super().__init__(
            f"run exceeded max_steps={max_steps} (last task: {last_task!r}). If the loop is meant to run "
            "longer, pass a larger max_steps to execute(); otherwise make it stop calling next_iteration()."
        )


class MaxCyclesExceededError(ExecutionError):
    """One task iterated more than its ``max_cycles``."""

    def __init__(self, task_id: str, max_cycles: int) -> None:
        self.task_id = task_id
        self.max_cycles = max_cycles
        self.cycle_count = max_cycles  # executions completed when the limit stopped the next one
        super().__init__(
            f"task {task_id!r} ran {max_cycles} cycles, its max_cycles limit. Raise it with "
            f"@task(max_cycles=N) (or config={{'max_cycles': N}} for every task) or end the loop sooner."
        )


class WorkflowCancelledError(ExecutionError):
    """A task called ``cancel_workflow(message)``."""

    def __init__(self, message: str, task_id: str | None = None) -> None:
        self.task_id = task_id
        super().__init__(f"workflow cancelled by task {task_id!r}: {message}")


class ParallelGroupError(ExecutionError):
    """A parallel group's error policy decided that the group failed."""

    def __init__(
        self,
        message: str,
        group_id: str,
        failed_tasks: Sequence[tuple[str, str]],
        successful_tasks: Sequence[str],
        errors: Mapping[str, BaseException] | None = None,
    ) -> None:
        self.group_id = group_id
        self.failed_tasks = list(failed_tasks)
        self.successful_tasks = list(successful_tasks)
        self.errors = dict(errors or {})
        super().__init__(message)


class TaskTimeoutError(ExecutionError, TimeoutError):
    """A task (or a group) ran longer than its configured timeout.

    A task's timeout sets ``task_id``, ``timeout_s`` and ``attempt``; a group's (config
    ``group_timeout``) sets ``group_id``, ``timeout_s`` and ``unfinished`` (the member ids it stopped).
    """


class TimeoutNotSupportedError(GraflowError, ValueError):
    """A task has ``timeout=`` but the handler that runs it cannot stop it at the deadline."""

    def __init__(self, task_id: str, handler: str, handler_type: str) -> None:
        self.task_id = task_id
        self.handler = handler
        super().__init__(
            f"task {task_id!r} has timeout= but its handler {handler!r} ({handler_type}) cannot honour a "
            "timeout (its class does not set supports_timeout = True). Remove the timeout option, run the "
            "task with a handler that supports it (e.g. 'direct'), or, if the handler runs the task in "
            "this process, set supports_timeout = True on its class."
        )


class BackendAccessError(GraflowError, PermissionError):
    """A backend (Redis, S3, ...) refused this process's credentials: waiting and retrying cannot help."""


class SerializationError(GraflowError, TypeError):
    """A task, its arguments or its result cannot be pickled to cross a process boundary."""


class RemoteTaskError(ExecutionError):
    """A task failed in another process and its exception could not be rebuilt here.

    ``remote_type`` and ``remote_traceback`` carry what the other side saw.
    """

    def __init__(self, remote_type: str, message: str, remote_traceback: str) -> None:
        self.remote_type = remote_type
        self.remote_traceback = remote_traceback
        super().__init__(f"{remote_type}: {message}")


class PayloadRejectedError(ExecutionError):
    """A serialized task payload failed its signature or version check and was never loaded."""


# --- result caching -------------------------------------------------------------------------------


class CacheError(ExecutionError):
    """A cached task did something a cache hit could not reproduce (see graflow-core README,
    "Result caching"), or a cache store is misused."""


class CacheKeyError(GraflowError, TypeError):
    """A cached task's argument has no stable encoding, so no cache key can be built from it."""

    def __init__(self, task_id: str, parameter: str, path: str, type_name: str, reason: str = "") -> None:
        self.task_id = task_id
        self.parameter = parameter
        self.path = path
        self.type_name = type_name
        where = f"parameter {parameter!r}" + (f" at {path}" if path else "")
        why = reason or (
            f"values of type {type_name} have no stable encoding (supported: None, bool, int, float, str, "
            "bytes, tuple, list, dict, set, frozenset, enums, attrs classes, dataclasses, named tuples, "
            "datetime, Decimal, UUID, paths, numpy arrays)"
        )
        super().__init__(
            f"task {task_id!r} has caching on but its {where} cannot be part of the cache key: {why}. "
            f"Pass cache_key=fn to build the key yourself (fn receives the resolved arguments as a dict "
            f"and returns str or bytes), or pass a supported value."
        )


# --- checkpoints -------------------------------------------------------------------------------------


class CheckpointError(GraflowError):
    """A checkpoint could not be written or read."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """One of a checkpoint's files is missing."""


class CheckpointCorruptedError(CheckpointError, ValueError):
    """A checkpoint file is truncated, not valid, tampered with, or fails its digest or signature."""


class CheckpointVersionError(CheckpointError, ValueError):
    """A checkpoint was written with a newer schema than this graflow-core understands."""


# --- upstream Graflow 0.2 names (issue 12) -----------------------------------------------------------
# The same errors under the names code written for upstream Graflow catches: drop-in compatibility.

GraflowRuntimeError = ExecutionError
CycleLimitExceededError = MaxCyclesExceededError
GraflowWorkflowCanceledError = WorkflowCancelledError
