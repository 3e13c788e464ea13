"""The attempt loop: a task with ``retries`` or a ``timeout`` runs here, in place, inside one execution.

:func:`run_attempts` is what :func:`graflow.core.execution.execute` calls for such a task, wherever it
runs (the engine loop, a group member's thread, a process-pool process, a worker slot), so the engine
sees one execution: the cycle count of ``next_iteration`` is not consumed by retries, and a group's
error policy sees only the final outcome.

One attempt runs in one of three ways (see :class:`graflow.core.handler.TaskHandler`):

* no timeout: called directly;
* a timeout, in the run's own process: in a daemon thread that the caller stops waiting for at the
  deadline. **A Python thread cannot be killed**: the timed-out attempt goes on running in the
  background (its channel writes and side effects still happen) until it returns by itself;
  A handler's ``set_result`` in that thread goes to the attempt's own slot
  (:class:`~graflow.core.context.AttemptSlot`), so an abandoned attempt cannot touch the run's results;
* a timeout, in a process pool or on a worker: in a child process whose process group is killed at
  the deadline (:mod:`graflow.core.attempt_process`); a handler that ``enforces_timeout`` (Docker)
  stops the task itself.

A timed-out attempt fails with ``TaskTimeoutError`` (a ``TimeoutError``, hence an ``OSError``) and
is retried like any error that ``retry_on`` matches: by default (``Exception``), yes.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from graflow.core.attempt_options import AttemptOptions, timed_tasks
from graflow.core.context import _ATTEMPT_SLOT, _CURRENT_TASK, AttemptSlot, TaskExecutionContext
from graflow.core.execution import execute_once
from graflow.core.handler import DirectTaskHandler
from graflow.exceptions import TaskTimeoutError, TimeoutNotSupportedError
from graflow.logs import get_logger

if TYPE_CHECKING:
    from graflow.core.handler import TaskHandler
    from graflow.core.task import TaskWrapper

log = get_logger("graflow.attempts")

_STEERING = ("_next_tasks", "_goto", "_iterate", "_control", "_control_task", "_checkpoints")
"""What a task asks of the run while it executes; a failed attempt's requests are forgotten."""

Attempt = Callable[["TaskHandler", "TaskWrapper", TaskExecutionContext], Any]


@attrs.define
class AttemptObserver:
    """Who hears about the retries of one run, and what ends its retry waits (set by the engine per run).

    ``stop`` is set when the run ends (success, failure, abort): a member still waiting out a retry
    delay in a background thread (a group that timed out) then gives up instead of retrying.
    """

    run_id: str
    session_id: str
    log: Any
    hook: Any  # the graflow_task_retrying caller, or None when no plugin implements it
    stop: threading.Event = attrs.Factory(threading.Event)


def attempts_made(task: Any, tctx: TaskExecutionContext) -> int:
    """How many attempts the execution ``tctx`` of ``task`` took (1 for a task without retries;
    a task retried by its run's default retries counts them too)."""
    made: int = getattr(tctx, "_attempts", 1)
    return made


def run_attempts(
    handler: TaskHandler, task: TaskWrapper, tctx: TaskExecutionContext, options: AttemptOptions | None = None
) -> Any:
    """Run ``task`` until an attempt succeeds, the error is not retryable, or retries are spent.

    The entry point for tasks with :attr:`~graflow.core.task.TaskWrapper.attempts`; same signature
    and result as :func:`~graflow.core.execution.execute`. The final error is raised as it was
    raised by the last attempt, with a note listing the earlier attempts' errors. ``options``
    replaces the task's own (a run's default retries, :func:`graflow.core.retry.with_default`).
    """
    if options is None:
        options = task.attempts  # execute() checked it
    assert options is not None
    once: Attempt = execute_once if options.timeout is None else _timed(handler, task, tctx)
    tctx._attempt_options = options
    tctx._attempts = 1
    try:
        return once(handler, task, tctx)
    except BaseException as exc:
        if options.retries == 0 or not options.retryable(exc):
            raise
        first = exc
    return _retry(handler, task, tctx, options, once, first)


def _retry(
    handler: TaskHandler,
    task: TaskWrapper,
    tctx: TaskExecutionContext,
    options: AttemptOptions,
    once: Attempt,
    error: BaseException,
) -> Any:
    observer: AttemptObserver | None = getattr(tctx.execution_context, "attempt_observer", None)
    earlier: list[str] = []
    attempt = 1
    while True:
        if attempt > options.retries or not options.retryable(error):
            _note_history(error, task.task_id, attempt, earlier)
            raise error
        delay = options.attempt_delay(attempt)
        _announce(observer, task.task_id, tctx, attempt, delay, error)
        earlier.append(f"attempt {attempt}: {type(error).__name__}: {_short(error)}")
        if _wait(observer, delay):
            error.add_note(f"Task {task.task_id!r}: the run ended while attempt {attempt + 1} waited; not retried.")
            _note_history(error, task.task_id, attempt, earlier[:-1])
            raise error
        for name in _STEERING:  # the failed attempt's next_task/next_iteration requests are void
            setattr(tctx, name, None)
        tctx._goto = False
        attempt += 1
        tctx._attempts = attempt
        try:
            return once(handler, task, tctx)
        except BaseException as exc:
            error = exc


def _wait(observer: AttemptObserver | None, delay: float) -> bool:
    """Wait out a retry delay; True when the run ended meanwhile (then the task is not retried).

    Without an observer (a process-pool or worker attempt) it is a plain sleep: a group abort ends
    it by ending the process (the pool's) or not at all (a worker finishes its retries; its
    graceful shutdown timeout bounds how long that keeps it from stopping)."""
    if observer is None:
        if delay > 0:
            time.sleep(delay)
        return False
    return observer.stop.wait(delay) if delay > 0 else observer.stop.is_set()


def _short(error: BaseException, limit: int = 200) -> str:
    text = str(error)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _note_history(error: BaseException, task_id: str, attempts: int, earlier: list[str]) -> None:
    if earlier:
        error.add_note(f"Task {task_id!r} failed after {attempts} attempts; earlier ones: " + "; ".join(earlier))


def _announce(
    observer: AttemptObserver | None,
    task_id: str,
    tctx: TaskExecutionContext,
    attempt: int,
    delay: float,
    error: BaseException,
) -> None:
    """The ``task_retrying`` event, and the ``graflow_task_retrying`` hook when the run has one."""
    cycle = tctx.cycle_count
    described = f"{type(error).__name__}: {error}"
    if observer is None:
        log.warning(
            "task_retrying",
            session_id=tctx.session_id,
            task_id=task_id,
            cycle=cycle,
            attempt=attempt,
            delay_s=round(delay, 6),
            error=described,
        )
        return
    observer.log.warning(
        "task_retrying", task_id=task_id, cycle=cycle, attempt=attempt, delay_s=round(delay, 6), error=described
    )
    if observer.hook is None:
        return
    try:
        observer.hook(
            run_id=observer.run_id,
            session_id=observer.session_id,
            task_id=task_id,
            cycle=cycle,
            attempt=attempt,
            delay_s=delay,
            error=error,
        )
    except Exception as hook_error:  # an observer must not turn a retry into a failure
        observer.log.error(
            "task_retrying_hook_failed", task_id=task_id, error=f"{type(hook_error).__name__}: {hook_error}"
        )
        error.add_note(f"A graflow_task_retrying hook raised while reporting this: {hook_error!r}")


# --- timeouts ----------------------------------------------------------------------------------------


def check_timeout_handlers(resolve: Callable[[str], TaskHandler], nodes: Mapping[str, Any]) -> None:
    """Refuse, when a run starts, a task in ``nodes`` whose ``timeout`` its handler cannot honour.

    Only tasks declared with a timeout are looked at (:func:`timed_tasks`); a handler name this
    process does not know (one installed only on the workers) is left for the worker to judge.
    """
    for task in timed_tasks():
        if nodes.get(task.task_id) is not task:
            continue
        try:
            handler = resolve(task.handler)
        except LookupError:
            continue
        _check_handler(handler, task)


def _check_handler(handler: TaskHandler, task: TaskWrapper) -> None:
    if not (handler.supports_timeout or handler.enforces_timeout):
        raise TimeoutNotSupportedError(task.task_id, task.handler, type(handler).__name__)


def _timed(handler: TaskHandler, task: TaskWrapper, tctx: TaskExecutionContext) -> Attempt:
    """How each attempt of this timed execution runs (see the module docstring). Raises before the
    first attempt (so the task fails at once, unretried) when that way is misconfigured."""
    _check_handler(handler, task)
    if handler.enforces_timeout:
        return execute_once
    if getattr(tctx.execution_context, "request", None) is not None:
        from graflow.core.attempt_process import attempt_in_child, start_method

        start_method()  # a bad GRAFLOW_ATTEMPT_START_METHOD
        return attempt_in_child
    return attempt_in_thread


def timed_out(task: TaskWrapper, tctx: TaskExecutionContext, what: str) -> TaskTimeoutError:
    timeout = task.attempts.timeout if task.attempts is not None else None
    attempt = getattr(tctx, "_attempts", 1)
    error = TaskTimeoutError(
        f"task {task.task_id!r} (cycle {tctx.cycle_count}, attempt {attempt}) ran longer than its "
        f"timeout of {timeout}s; {what}"
    )
    error.task_id = task.task_id  # type: ignore[attr-defined]
    error.timeout_s = timeout  # type: ignore[attr-defined]
    error.attempt = attempt  # type: ignore[attr-defined]
    return error


def attempt_in_thread(handler: TaskHandler, task: TaskWrapper, tctx: TaskExecutionContext) -> Any:
    """One attempt in a daemon thread; at the deadline the caller stops waiting and raises
    ``TaskTimeoutError``. The thread cannot be killed and runs on, but it can no longer change the
    run: it works on its own copy of the execution context (a late ``next_task`` changes nothing)
    and its handler's ``set_result`` goes to a slot of its own (:class:`AttemptSlot`), never into
    the run's results, which it neither reads nor restores."""
    timeout = task.attempts.timeout if task.attempts is not None else None
    own = TaskExecutionContext(tctx.execution_context, tctx.task_id, tctx.cycle_count, tctx._data)
    own._kwargs = tctx._kwargs
    own._attempts = tctx._attempts  # ctx.retry_count / ctx.max_retries inside the attempt
    own._attempt_options = tctx._attempt_options
    outcome: list[tuple[bool, Any]] = []
    done = threading.Event()

    def attempt() -> None:
        try:
            outcome.append((True, _attempt_in_slot(handler, task, own)))
        except BaseException as exc:
            outcome.append((False, exc))
        finally:
            done.set()

    runner = threading.Thread(
        target=contextvars.copy_context().run, args=(attempt,), name=f"graflow-attempt:{task.task_id}", daemon=True
    )
    runner.start()
    if not done.wait(timeout):
        log.warning("task_attempt_abandoned", task_id=task.task_id, cycle=tctx.cycle_count, timeout_s=timeout)
        raise timed_out(task, tctx, "Graflow stopped waiting, but a Python thread cannot be killed: the attempt "
                        "goes on running in the background until it returns")  # fmt: skip
    ok, value = outcome[0]
    if not ok:
        raise value
    for name in _STEERING:
        setattr(tctx, name, getattr(own, name))
    return value


def _attempt_in_slot(handler: TaskHandler, task: TaskWrapper, own: TaskExecutionContext) -> Any:
    """:func:`~graflow.core.execution.execute_once` for the thread of a timed attempt (runs inside
    its copied context): the result the handler records goes to this attempt's slot."""
    if type(handler) is DirectTaskHandler:
        return task.invoke(own)
    slot = AttemptSlot(task.task_id)
    _ATTEMPT_SLOT.set(slot)
    _CURRENT_TASK.set(own)
    returned = handler.execute_task(task, own.execution_context)
    return returned if returned is not None else slot.value
