"""ExecutionContext (the state of one run) and TaskExecutionContext (what one task execution sees)."""

from __future__ import annotations

import contextvars
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from graflow.channels.base import Channel
from graflow.channels.fields import FieldChannel
from graflow.channels.typed import TypedChannel
from graflow.channels.views import NamespacedChannel
from graflow.core.graph import TaskGraph
from graflow.core.task import Executable
from graflow.exceptions import GraflowError, TaskNotFoundError
from graflow.queue.base import NO_DATA, TaskQueue, TaskSpec

if TYPE_CHECKING:
    from graflow.checkpoint.metadata import CheckpointMetadata
    from graflow.core.attempt_options import AttemptOptions
    from graflow.core.engine import WorkflowEngine
    from graflow.plugins.manager import PluginHost

T = TypeVar("T")

DEFAULT_MAX_STEPS = 1_000_000
"""Generous: a runaway loop of no-op tasks hits it in a few seconds, real loops rarely do."""

_CURRENT_TASK: contextvars.ContextVar[TaskExecutionContext | None] = contextvars.ContextVar(
    "graflow_current_task", default=None
)


class AttemptSlot:
    """Where ``set_result`` puts the result of one timed attempt that runs in a thread of its own
    (:func:`graflow.core.attempts.attempt_in_thread`): that thread cannot be killed, so a timed-out
    attempt must have nothing it can later write into the run's results."""

    __slots__ = ("task_id", "value")

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        self.value: Any = None


_ATTEMPT_SLOT: contextvars.ContextVar[AttemptSlot | None] = contextvars.ContextVar("graflow_attempt_slot", default=None)
"""Set only inside the thread of a timed attempt (see :class:`AttemptSlot`)."""


def current_task_context(task_id: str | None = None) -> TaskExecutionContext:
    """The execution in progress in this thread (set by the engine around a handler call)."""
    ctx = _CURRENT_TASK.get()
    if ctx is None or (task_id is not None and ctx.task_id != task_id):
        raise GraflowError(
            f"task {task_id!r} is not executing: task.run() works inside a handler's execute_task (from "
            "another thread, through contextvars.copy_context().run) or in the main thread outside a run; "
            "call the task object directly to run its function outside a workflow"
        )
    return ctx


class ExecutionContext:
    """Everything one run knows: graph, queue, channel, results, counters.

    Build with :meth:`create`, run with ``WorkflowEngine().execute(context)``. A checkpoint saves this
    object (with the graph and channel data) and resuming rebuilds it, pending queue included.
    """

    def __init__(
        self,
        graph: TaskGraph,
        queue: TaskQueue,
        channel: Channel,
        *,
        session_id: str,
        start_nodes: list[str],
        queue_backend: str,
        channel_backend: str,
        config: dict[str, Any],
        max_steps: int,
    ) -> None:
        self.graph = graph
        self.queue = queue
        self.channel = channel
        self.session_id = session_id
        self.start_nodes = start_nodes
        self.queue_backend = queue_backend
        self.channel_backend = channel_backend
        self.config = config
        self.max_steps = max_steps
        self.results: dict[str, Any] = {}
        self.completed: set[str] = set()
        self.cycle_counts: dict[str, int] = {}
        self.steps = 0
        # successor -> predecessors still to finish, created when its first predecessor finishes
        self.waiting: dict[str, int] = {}
        self.last_checkpoint_path: str | None = None
        self.last_checkpoint_metadata: CheckpointMetadata | None = None
        self.current_task: TaskSpec | None = None
        self.finished = False
        self.active_run: Any = None  # the engine's run in progress (the result cache reads its settings)
        # Set by the engine for each run: who hears about retries (graflow.core.attempts.AttemptObserver).
        self.attempt_observer: Any = None

    @classmethod
    def create(
        cls,
        graph: TaskGraph,
        start_node: str | None = None,
        *,
        queue_backend: str = "memory",
        channel_backend: str = "memory",
        config: Mapping[str, Any] | None = None,
        max_steps: int | None = None,
        session_id: str | None = None,
        engine: WorkflowEngine | None = None,
        default_max_cycles: int | None = None,
        default_max_retries: int | None = None,
    ) -> ExecutionContext:
        """A new run of ``graph`` from ``start_node`` (default: every root), with its ready queue filled.

        The run works on a copy of ``graph``: tasks added with ``next_task`` appear in
        ``context.graph`` and leave the workflow's graph as it was built.

        Backends are chosen by name from the plugins (``memory`` built in; ``redis`` from
        graflow-redis). ``config`` goes to the backends (e.g. ``redis_url``) and may set
        ``max_cycles`` for every task; ``default_max_cycles=N`` (upstream Graflow 0.2's spelling)
        does the same. ``default_max_retries=N`` (= ``config={"max_retries": N}``) retries every task
        that declares no retries of its own up to N times, at once (upstream's behaviour).
        """
        from graflow.plugins.manager import default_host

        host: PluginHost = engine.host if engine is not None else default_host()
        graph = graph.copy()  # the run grows its own graph; the workflow's stays as it was built
        if start_node is not None:
            graph.get(start_node)  # fail fast on a typo, naming the tasks that exist
            if start_node in graph.member_of:
                raise GraflowError(
                    f"start node {start_node!r} is a member of parallel group "
                    f"{graph.member_of[start_node]!r}; start from the group instead"
                )
            starts = [start_node]
        else:
            starts = graph.roots()
            if not starts and len(graph):
                raise GraflowError("the graph has no root task to start from; pass start_node=")
        settings = dict(config or {})
        if default_max_cycles is not None:
            settings["max_cycles"] = default_max_cycles
        if default_max_retries is not None:
            settings["max_retries"] = default_max_retries
        if "max_retries" in settings:  # a bad value fails here, not when a task first fails
            from graflow.core.retry import default_attempts

            default_attempts(settings["max_retries"], "ExecutionContext.create")
        session = session_id or uuid.uuid4().hex[:16]
        queue = host.get("queue backend", queue_backend).factory(session, settings)
        channel = host.get("channel backend", channel_backend).factory(session, settings)
        ctx = cls(
            graph,
            queue,
            channel,
            session_id=session,
            start_nodes=starts,
            queue_backend=queue_backend,
            channel_backend=channel_backend,
            config=settings,
            max_steps=max_steps if max_steps is not None else int(settings.get("max_steps", DEFAULT_MAX_STEPS)),
        )
        queue.put_many(TaskSpec(s) for s in starts)
        return ctx

    # --- results and channels ----------------------------------------------------------------------

    def set_result(self, task_id: str, value: Any) -> None:
        slot = _ATTEMPT_SLOT.get()  # set_result is the handlers' call: the engine writes results itself
        if slot is not None and slot.task_id == task_id:
            slot.value = value
            return
        self.results[task_id] = value

    def get_result(self, task_id: str, default: Any = NO_DATA) -> Any:
        """The result of ``task_id``; ``default`` if it has none yet (or ``KeyError``-like error)."""
        try:
            return self.results[task_id]
        except KeyError:
            if default is not NO_DATA:
                return default
            if task_id not in self.graph:
                raise TaskNotFoundError(task_id, list(self.graph.nodes)) from None
            raise KeyError(f"task {task_id!r} has no result yet (it has not run, or it is still running)") from None

    def get_channel(self, namespace: str | None = None) -> Channel:
        return self.channel if namespace is None else NamespacedChannel(self.channel, namespace)

    @property
    def completed_tasks(self) -> list[str]:
        """Ids of the tasks that completed, in the order they first produced a result (upstream
        Graflow 0.2's name; ``completed`` is the same as a set)."""
        completed = self.completed
        return [task_id for task_id in self.results if task_id in completed]

    def execute(
        self,
        start_node: str | None = None,
        max_steps: int | None = None,
        engine: WorkflowEngine | None = None,
    ) -> Any:
        """Run this context and return the last task's result (spec section 3:
        ``ctx.execute("state_controller", max_steps=100)``).

        ``start_node`` makes a run that has not executed anything yet start from that task instead
        of the start nodes it was created with (on a run in progress it queues that task once more).
        ``engine`` defaults to a new :class:`WorkflowEngine`; pass one that has handlers registered.
        """
        from graflow.core.engine import WorkflowEngine

        if max_steps is not None:
            self.max_steps = max_steps
        extra = start_node
        if start_node is not None and self.steps == 0:
            self.graph.get(start_node)
            self.queue.clear()
            self.queue.put(TaskSpec(start_node))
            self.start_nodes = [start_node]
            extra = None
        return (engine or WorkflowEngine()).execute(self, start_task_id=extra)

    def __repr__(self) -> str:
        return (
            f"ExecutionContext(session_id={self.session_id!r}, steps={self.steps}, "
            f"pending={len(self.queue)}, completed={len(self.completed)})"
        )


class TaskExecutionContext:
    """What one execution of one task sees: its channel, and the calls that steer the run.

    Requests (``next_task``, ``next_iteration``, ``terminate_workflow``, ``cancel_workflow``,
    deferred ``checkpoint``) are recorded here and applied by the engine when the task returns, so a
    task that raises changes nothing.
    """

    __slots__ = (
        "_attempt_options",  # the options the attempt loop runs with, set with _attempts
        "_attempts",  # attempts made, set only for tasks with retries/timeout (graflow.core.attempts)
        "_checkpoints",
        "_control",
        "_control_task",
        "_data",
        "_goto",
        "_iterate",
        "_kwargs",
        "_next_tasks",
        "cycle_count",
        "execution_context",
        "task_id",
    )
    _attempts: int  # unset unless the task has retries/timeout: plain tasks pay nothing for it
    _attempt_options: AttemptOptions

    def __init__(self, execution_context: Any, task_id: str, cycle_count: int, data: Any = NO_DATA) -> None:
        self.execution_context = execution_context
        self.task_id = task_id
        self.cycle_count = cycle_count
        self._data = data
        self._kwargs: dict[str, Any] | None = None  # arguments resolved by another process
        self._next_tasks: list[Executable] | None = None
        self._goto = False
        self._iterate: Any = None  # None, or a 1-tuple holding the iteration data
        self._control: tuple[str, str] | None = None  # ("terminate" | "cancel", message)
        self._control_task: str | None = None  # the group member that asked, when a group passes it on
        self._checkpoints: list[tuple[dict[str, Any], str | None]] | None = None  # deferred requests

    @property
    def session_id(self) -> str:
        return str(self.execution_context.session_id)

    @property
    def graph(self) -> TaskGraph:
        """The graph as it is now, dynamic tasks included."""
        graph: TaskGraph | None = self.execution_context.graph
        if graph is None:
            raise GraflowError("context.graph is not available in a task running in another process")
        return graph

    def get_channel(self, namespace: str | None = None) -> Channel:
        """The run's channel (or a namespace inside it)."""
        channel: Channel = self.execution_context.channel
        return channel if namespace is None else NamespacedChannel(channel, namespace)

    def get_typed_channel(self, schema: type[T], namespace: str | None = None) -> TypedChannel[T]:
        """The channel as typed messages: each key holds one whole, validated ``T`` (a TypedDict or attrs class)."""
        return TypedChannel(self.get_channel(namespace), schema)

    def get_field_channel(self, schema: type[T], namespace: str | None = None) -> FieldChannel[T]:
        """The channel as the fields of ``T``: each field a key of its own, each write type-checked."""
        return FieldChannel(self.get_channel(namespace), schema)

    def get_result(self, task_id: str, default: Any = NO_DATA) -> Any:
        return self.execution_context.get_result(task_id, default)

    @property
    def max_cycles(self) -> int | None:
        """How many times this task may run in this run (``@task(max_cycles=N)``, else the run's
        ``max_cycles`` setting); None when unlimited."""
        ectx = self.execution_context
        graph = getattr(ectx, "graph", None)
        if graph is None:  # in another process: the run that shipped the task decided the limit
            shipped: int | None = getattr(ectx, "max_cycles", None)
            return shipped
        node = graph.nodes.get(self.task_id)
        limit = getattr(node, "max_cycles", None)
        if not limit:
            run = getattr(ectx, "active_run", None)  # the run's default: its config over the engine's
            limit = run.default_max_cycles if run is not None else getattr(ectx, "config", {}).get("max_cycles")
        return int(limit) if limit else None

    @property
    def retry_count(self) -> int:
        """Retries made so far in this execution: 0 on the first attempt, 1 on the first retry
        (upstream Graflow 0.2's name; the attempt number is ``retry_count + 1``)."""
        made: int = getattr(self, "_attempts", 1)
        return made - 1

    @property
    def max_retries(self) -> int:
        """How many retries this execution may make: the task's own ``retries``/``max_retries``/
        ``retry_policy``, else the run's ``default_max_retries``; 0 when none."""
        options: AttemptOptions | None = getattr(self, "_attempt_options", None)
        return options.retries if options is not None else 0

    def can_iterate(self) -> bool:
        """Whether ``next_iteration()`` may still run this task again (its cycle budget is not spent)."""
        limit = self.max_cycles
        return limit is None or self.cycle_count < limit

    # --- steering ----------------------------------------------------------------------------------

    def next_task(self, task: Executable | str, goto: bool = False) -> str:
        """Run ``task`` after this one. With ``goto=True`` it replaces this task's static successors.

        A task of the static graph can be named too (by object or id): it is queued like a new one,
        except a static successor of this task, which already runs after it (once, when all its
        predecessors finished). Loops back to an earlier task use ``goto=True``.
        """
        if isinstance(task, str):
            graph = self.execution_context.graph
            if graph is not None:
                task = graph.get(task)
            else:
                raise GraflowError("next_task by id needs the graph; pass the task object instead")
        if not isinstance(task, Executable):
            raise TypeError(f"next_task expects a task (TaskWrapper/@task/ParallelGroup), got {task!r}")
        if self._next_tasks is None:
            self._next_tasks = []
        self._next_tasks.append(task)
        if goto:
            self._goto = True
        return task.task_id

    def next_iteration(self, data: Any = NO_DATA) -> None:
        """Run this task again after it returns, passing ``data`` to its first non-context parameter."""
        self._iterate = (data,)

    def terminate_workflow(self, message: str = "") -> None:
        """End the run successfully after this task returns; nothing else runs. A cancel asked for
        in the same task wins: a run a task wanted cancelled must not end as a success."""
        if self._control is None or self._control[0] != "cancel":
            self._control = ("terminate", message)

    def cancel_workflow(self, message: str = "") -> None:
        """End the run with ``WorkflowCancelledError`` after this task returns."""
        self._control = ("cancel", message)

    def checkpoint(
        self,
        metadata: Mapping[str, Any] | None = None,
        deferred: bool = True,
        path: str | None = None,
    ) -> tuple[str, CheckpointMetadata] | None:
        """Checkpoint the run.

        Deferred (the default): written right after this task succeeds, so a resume continues after
        it; the path lands in ``execution_context.last_checkpoint_path``. ``deferred=False``: written
        now and returned as ``(path, metadata)``; a resume re-runs this task.
        """
        if deferred:
            if self._checkpoints is None:
                self._checkpoints = []
            self._checkpoints.append((dict(metadata or {}), path))
            return None
        from graflow.checkpoint.manager import CheckpointManager

        ectx = self.execution_context
        if not isinstance(ectx, ExecutionContext):
            raise GraflowError("checkpoint(deferred=False) is not available in a task running in another process")
        return CheckpointManager.create_checkpoint(
            ectx, metadata=metadata, path=path, current_task=TaskSpec(self.task_id, self._data)
        )

    def __repr__(self) -> str:
        return f"TaskExecutionContext(task_id={self.task_id!r}, cycle={self.cycle_count})"
