"""The plugin contract: every hook Graflow calls, with the docstring that is its reference.

Plugins implement these with ``@graflow.hookimpl`` in a module named by an entry point in the group
``graflow`` (or passed as ``WorkflowEngine(plugins=[module_or_object])``). pluggy's rule holds: an
implementation may accept any subset of a hook's arguments, so hooks can grow arguments without
breaking plugins; implementation parameters must not have defaults (pluggy never passes those).

Two kinds of hooks:

* Registrar hooks (``graflow_register_*``) run once per engine build. Each receives a ``register``
  callback; call ``register(name, factory)`` once per thing offered. Names are global per kind: a
  name registered twice raises ``DuplicateNameError`` naming both plugins, so call order never
  decides who wins. Everything a user picks by name (``@task(handler=...)``, ``queue_backend=...``,
  ``channel_backend=...``, ``CoordinationBackend``, a policy name, a checkpoint path's scheme,
  ``cache_store=...``) comes from one of these tables.
* Lifecycle hooks (``graflow_run_*``, ``graflow_group_*``, ``graflow_task_*``, ``graflow_remote_*``,
  ``graflow_worker_*``) observe runs, shipped tasks and workers. The engine looks up once per
  build which of them have implementations and never calls one that has none, so an unused hook costs
  nothing per task. They run in the thread that executed the task; exceptions they raise propagate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import argparse

    from graflow.plugins.registry import Registrar
    from graflow.worker.protocol import WorkSource
    from graflow.worker.worker import TaskWorker

PROJECT_NAME = "graflow"
ENTRY_POINT_GROUP = "graflow"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


# --- registrar hooks ---------------------------------------------------------------------------------


@hookspec
def graflow_register_handlers(register: Registrar) -> None:
    """Offer task handlers.

    :param register: ``register(name, factory)``; ``factory(config)`` receives the engine's config
        mapping and returns a :class:`graflow.core.handler.TaskHandler`. It is called at most once per
        engine, the first time a task names the handler.
    """


@hookspec
def graflow_register_queue_backends(register: Registrar) -> None:
    """Offer queue backends: where a run keeps the tasks that are ready to execute.

    :param register: ``register(name, factory)``; ``factory(session_id, config)`` returns a
        :class:`graflow.queue.base.TaskQueue` scoped to that session. ``graflow worker`` calls it
        with ``session_id=""`` and the worker options as ``config``; it can serve workers only if
        what it returns is also a :class:`graflow.worker.WorkSource`.
    """


@hookspec
def graflow_register_channel_backends(register: Registrar) -> None:
    """Offer channel backends: the workflow-scoped key-value store tasks share.

    :param register: ``register(name, factory)``; ``factory(session_id, config)`` returns a
        :class:`graflow.channels.base.Channel` scoped to that session.
    """


@hookspec
def graflow_register_coordinators(register: Registrar) -> None:
    """Offer coordination backends: how a parallel group's members are run.

    :param register: ``register(name, factory)``; ``factory(config)`` returns a
        :class:`graflow.coordination.base.GroupCoordinator`. ``config`` merges the engine config with
        the group's ``with_execution(...)`` options. One coordinator serves one group execution.
    """


@hookspec
def graflow_register_policies(register: Registrar) -> None:
    """Offer parallel-group error policies by name (``group.with_policy("name")``).

    :param register: ``register(name, factory)``; ``factory(**options)`` returns a
        :class:`graflow.policies.ErrorHandlingPolicy`.
    """


@hookspec
def graflow_register_checkpoint_stores(register: Registrar) -> None:
    """Offer checkpoint stores by URL scheme (``file``, ``redis``, ``s3``, ...).

    A plain path uses the ``file`` scheme.

    :param register: ``register(scheme, factory)``; ``factory(config)`` returns a
        :class:`graflow.checkpoint.store.CheckpointStore`.
    """


@hookspec
def graflow_register_cache_stores(register: Registrar) -> None:
    """Offer result-cache stores by name (``@task(cache=True, cache_store="name")`` or config
    ``cache_store``; ``memory`` and ``file`` built in, ``redis`` from graflow-redis).

    :param register: ``register(name, factory)``; ``factory(config)`` returns a
        :class:`graflow.cache.CacheStore`. In the run's process ``config`` is the engine config with
        the context config on top, and the factory is called at most once per run and name; in a
        process that runs a shipped task (a pool worker, a Redis worker) it is the store's own
        :meth:`~graflow.cache.CacheStore.shipping_config` plus ``cache_store`` (the name), and the
        store is built once per process and config.
    """


# --- lifecycle hooks ---------------------------------------------------------------------------------


@hookspec
def graflow_run_started(run_id: str, session_id: str, start_tasks: list[str]) -> None:
    """A run (one ``WorkflowEngine.execute`` call) is about to execute its first task."""


@hookspec
def graflow_run_finished(
    run_id: str, session_id: str, duration_s: float, steps: int, error: BaseException | None
) -> None:
    """A run ended; ``error`` is ``None`` on success (including ``terminate_workflow``)."""


@hookspec
def graflow_task_started(run_id: str, session_id: str, task_id: str, cycle: int) -> None:
    """A task is about to execute in this process; ``cycle`` counts its iterations from 1."""


@hookspec
def graflow_task_succeeded(
    run_id: str,
    session_id: str,
    task_id: str,
    cycle: int,
    duration_s: float,
    result: Any,
    worker_id: str | None,
    attempts: int,
) -> None:
    """A task returned normally.

    ``worker_id`` names the worker that ran it in another process (a group member on a Redis worker
    or in a process pool); ``None`` when it ran in this process. ``attempts`` counts the attempts it
    took (1 without retries); ``duration_s`` spans all of them, retry delays included.
    """


@hookspec
def graflow_task_failed(
    run_id: str,
    session_id: str,
    task_id: str,
    cycle: int,
    duration_s: float,
    error: BaseException,
    worker_id: str | None,
    attempts: int,
) -> None:
    """A task raised ``error``. Called before the run decides what the failure means.

    ``worker_id`` names the worker that ran it in another process, as for ``graflow_task_succeeded``.
    With retries, called once, for the last attempt's error, after every retry was spent (or the
    error was not retryable); ``attempts`` counts the attempts made.
    """


@hookspec
def graflow_task_retrying(
    run_id: str, session_id: str, task_id: str, cycle: int, attempt: int, delay_s: float, error: BaseException
) -> None:
    """Attempt ``attempt`` (1-based) of a task with ``retries`` failed with ``error`` and the task will
    run again, as attempt ``attempt + 1`` of the same ``cycle``, after ``delay_s`` seconds.

    Called in the process and thread that runs the task's execution, before the delay (with a
    ``timeout``, the attempt itself ran in a helper thread or child process); not called for the last
    attempt (``graflow_task_failed`` reports that) nor for an error that is not retried. For a member
    run by a worker or a process pool it is not called on the submitting side: the executing side
    logs ``task_retrying`` and calls ``graflow_remote_retrying``, and the attempt count arrives with
    the outcome (``graflow_task_succeeded`` / ``graflow_task_failed``'s ``attempts``). An exception
    raised here is logged (``task_retrying_hook_failed``) and noted on the task's error; the retry
    goes ahead.
    """


@hookspec
def graflow_task_cache_hit(run_id: str, session_id: str, task_id: str, cycle: int, key: str) -> None:
    """A cached task's result came from the cache: its handler was not called, and nothing it would
    have done besides returning (channel writes, prints) happened.

    Called between ``graflow_task_started`` and ``graflow_task_succeeded``: a hit is a successful
    execution. For a group member that ran in another process (a process pool, a Redis worker) it
    is called in the run's process when the member's outcome arrives. ``key`` is the entry's key
    (``"<task_id>:<digest>"``). Not called on a miss.
    """


@hookspec
def graflow_group_started(
    run_id: str, session_id: str, group_id: str, cycle: int, members: list[str], backend: str
) -> None:
    """A parallel group is about to submit its members (``members``: their task ids) to the
    coordination backend named ``backend``. Called in the thread that runs the group; each of its
    members' ``graflow_task_*`` calls (in this process) comes after it, and its
    ``graflow_group_finished`` after all of them. Nested groups nest."""


@hookspec
def graflow_group_finished(
    run_id: str, session_id: str, group_id: str, cycle: int, duration_s: float, error: BaseException | None
) -> None:
    """A parallel group ended: every member came back (or the group gave up on them) and its error
    policy was applied. ``error`` is what the group raises (``ParallelGroupError``, a timeout), else
    ``None``, also when the policy tolerated failed members."""


# --- remote execution hooks --------------------------------------------------------------------------


@hookspec
def graflow_remote_context(
    run_id: str, session_id: str, group_id: str, task_id: str, cycle: int
) -> dict[str, str] | None:
    """A member of group ``group_id`` is about to be shipped to another process (a worker, a process
    pool, a container): return entries to carry along, or ``None``.

    Called in the submitting process when the request is built. The results of every implementation
    are merged into one ``dict[str, str]`` (plain strings only: it is pickled and signed with the
    payload; a later plugin's key wins), which the executing side receives as ``context`` in
    ``graflow_remote_started``/``graflow_remote_finished``. Use it for trace context (W3C
    ``traceparent``), correlation ids, baggage; never for secrets, which would rest in the broker.

    Also called where a shipped task with a ``timeout`` executes, before each attempt's child process,
    in the attempt's thread, with ``run_id=""`` and ``group_id=""`` (the child receives the result in
    ``graflow_remote_attempt_started``).
    """


@hookspec
def graflow_remote_started(
    context: dict[str, str], session_id: str, task_id: str, cycle: int, worker_id: str | None, handler: str
) -> None:
    """The executing side (``graflow.core.remote.run_request``: a worker slot, a pool process) is
    about to run a shipped task, with the plugins installed *there*. ``context`` is what
    ``graflow_remote_context`` returned on the submitting side (``{}`` when nothing); ``worker_id`` is
    ``None`` outside a TaskWorker; ``handler`` names the task's handler. ``graflow_remote_finished``
    follows in the same thread with the same ``context`` object, so a plugin can key state by
    ``id(context)``."""


@hookspec
def graflow_remote_finished(
    context: dict[str, str],
    session_id: str,
    task_id: str,
    cycle: int,
    worker_id: str | None,
    duration_s: float,
    error: BaseException | None,
    cache_hit: str | None,
) -> None:
    """The shipped task started by ``graflow_remote_started`` ended: ``error`` is ``None`` when it
    returned, else what it raised (the run receives it too). Called even when the task failed.
    ``cache_hit`` is the cache entry's key when its result came from the result cache (its handler
    did not run), else ``None``. An
    exception raised here is logged (``remote_finished_hook_failed``) and noted on the task's error;
    it never turns the task's outcome into a failure."""


@hookspec
def graflow_remote_retrying(
    context: dict[str, str],
    session_id: str,
    task_id: str,
    cycle: int,
    worker_id: str | None,
    attempt: int,
    delay_s: float,
    error: BaseException,
) -> None:
    """Attempt ``attempt`` (1-based) of the shipped task started by ``graflow_remote_started`` failed
    with ``error`` and runs again here, as attempt ``attempt + 1``, after ``delay_s`` seconds: the
    executing side's ``graflow_task_retrying``. Called in the thread that runs the task, between
    ``graflow_remote_started`` and ``graflow_remote_finished`` (same ``context`` object), before the
    delay; not for the last attempt. An exception raised here is logged
    (``task_retrying_hook_failed``) and noted on the task's error; the retry goes ahead."""


@hookspec
def graflow_remote_attempt_started(
    context: dict[str, str], session_id: str, task_id: str, cycle: int, attempt: int
) -> None:
    """The child process of a timed attempt (a shipped task with a ``timeout``, whose attempts run in
    a process that is killed at the deadline) is about to run attempt ``attempt``. The execution is
    reported by the parent process (``graflow_remote_started``/``graflow_remote_finished`` are not
    called in the child); ``context`` is what ``graflow_remote_context`` returned in the parent,
    asked there with ``run_id=""`` and ``group_id=""`` in the attempt's thread, so a plugin can carry
    what is current for the attempt (its trace span) into the child. Called only when ``context``
    is not empty. The child runs this one attempt and exits. An exception raised here is logged
    (``remote_attempt_started_hook_failed``); the attempt runs."""


# --- worker hooks ------------------------------------------------------------------------------------


@hookspec
def graflow_worker_add_options(parser: argparse.ArgumentParser) -> None:
    """Add command-line options to ``graflow worker`` (an ``argparse.ArgumentParser``). Give each an
    environment-variable default like the built-in options; the parsed values reach
    ``graflow_worker_started`` as ``options``. Called once per parser, when it is built."""


@hookspec
def graflow_worker_started(worker_id: str, worker: TaskWorker, queue: WorkSource, options: dict[str, Any]) -> None:
    """A :class:`~graflow.worker.TaskWorker` is about to take work. ``queue`` is its
    :class:`~graflow.worker.WorkSource` (when it is also a :class:`~graflow.worker.CountsDepth`,
    ``queue.depth()`` asks the backend how much waits);
    ``worker.tasks_running`` is how many tasks run now; ``options`` are the parsed command-line
    options (``{}`` for a worker built in code). Raise :class:`graflow.exceptions.GraflowError` for
    a bad setting: ``graflow worker`` then exits with code 2 and the message."""


@hookspec
def graflow_worker_task_done(
    worker_id: str,
    worker: TaskWorker,
    task_id: str,
    cycle: int,
    handler: str | None,
    duration_s: float,
    error: BaseException | None,
) -> None:
    """A worker slot of ``worker`` finished one delivery (worker ids need not be unique, even in one
    process: key state by ``worker``): ``handler`` names the task's handler (``None`` when the
    payload could not be loaded), ``error`` is what it raised (or why the payload was refused), else
    ``None``. Called in the slot thread, before the outcome is reported; keep it cheap."""


@hookspec
def graflow_worker_stopped(worker_id: str, worker: TaskWorker) -> None:
    """The worker stopped: running tasks finished or were given back, its outcomes were reported.
    Release what ``graflow_worker_started`` opened (servers, threads). Also called when a
    ``graflow_worker_started`` implementation raised (the worker never took work), so the plugins
    that started before it release theirs; it may then find nothing opened."""
