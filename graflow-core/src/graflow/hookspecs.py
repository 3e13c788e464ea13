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
  ``channel_backend=...``, ``CoordinationBackend``, a policy name, a checkpoint path's scheme) comes
  from one of these tables.
* Lifecycle hooks (``graflow_run_*``, ``graflow_task_*``) observe runs. The engine looks up once per
  build which of them have implementations and never calls one that has none, so an unused hook costs
  nothing per task. They run in the thread that executed the task; exceptions they raise propagate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from graflow.plugins.registry import Registrar

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
    run_id: str, session_id: str, task_id: str, cycle: int, duration_s: float, result: Any, attempts: int
) -> None:
    """A task returned normally.

    ``attempts`` counts the attempts it took (1 without retries); ``duration_s`` spans all of them,
    retry delays included.
    """


@hookspec
def graflow_task_failed(
    run_id: str, session_id: str, task_id: str, cycle: int, duration_s: float, error: BaseException, attempts: int
) -> None:
    """A task raised ``error``. Called before the run decides what the failure means.

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
    run by a worker or a process pool it is not called on the submitting side: the worker logs
    ``task_retrying`` and the attempt count arrives with the outcome (``graflow_task_succeeded`` /
    ``graflow_task_failed``'s ``attempts``). An exception raised here is logged
    (``task_retrying_hook_failed``) and noted on the task's error; the retry goes ahead.
    """
