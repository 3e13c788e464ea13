"""One attempt of a timed task in a child process that is killed at the deadline.

Used where a task runs away from its run (a process-pool member, a worker delivery): there the
attempt must really stop at its ``timeout``, and only a process can be stopped. The child runs the
same :class:`~graflow.core.remote.RemoteRequest` for one attempt and sends back its
:class:`~graflow.coordination.base.MemberOutcome` (result or error, channel journal, ``next_task``
requests) over a pipe; the parent applies it as if the attempt had run in place.

Children come from a ``forkserver`` (``spawn`` where there is none; ``GRAFLOW_ATTEMPT_START_METHOD``
overrides, with one of those two): a worker has threads and open connections, which a plain ``fork``
would copy in an unknown state (and a forked child would inherit the parent's end of the lifeline
pipe, so it could not notice its parent's death). The first child of a process starts the fork
server (~0.1-0.2 s); later ones take a few milliseconds.

Each child leads a process group of its own (``os.setsid``), which is what is killed:

* at the deadline, the whole group, so the subprocesses an attempt started die with it;
* when its parent dies (a worker killed, a pool process stopped by a group abort): the child
  watches a pipe only the parent holds open, and then kills its group itself;
* a signal sent to the worker's process group (``kill -TERM -<pgid>``, Ctrl-C in a terminal) does
  not reach the attempt: the worker decides, and its graceful shutdown lets the attempt finish (or
  gives the delivery back after ``graceful_shutdown_timeout``, whereupon the child sees its parent
  leave and kills its group).

A child that cannot load or run the request (a module the fresh process cannot import) sends that
error back, marked as not retryable; it also decides there, where the exception is real, whether a
failed attempt is retryable (``retry_on``), and the parent honours that verdict even when the
exception itself could not be rebuilt (it then arrives as ``RemoteTaskError``).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
from typing import TYPE_CHECKING, Any

import attrs

from graflow.channels.views import JournalChannel, apply_channel_ops
from graflow.coordination.base import MemberOutcome
from graflow.core import remote
from graflow.core.attempt_options import VERDICT
from graflow.core.attempts import timed_out
from graflow.exceptions import ExecutionError
from graflow.logs import get_logger

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from graflow.core.context import TaskExecutionContext
    from graflow.core.handler import TaskHandler
    from graflow.core.task import TaskWrapper

log = get_logger("graflow.attempts")

START_METHOD_ENV = "GRAFLOW_ATTEMPT_START_METHOD"
START_METHODS = ("forkserver", "spawn")
"""What ``GRAFLOW_ATTEMPT_START_METHOD`` may name (see the module docstring for why not ``fork``)."""
ORPHAN_EXIT = 70
"""Exit code of a child whose parent went away before it finished (when it cannot kill its group)."""

_REPORTED = threading.Event()
"""Set in a child once its outcome is sent: the parent closing the lifeline then means "done"."""


def start_method() -> str:
    """The start method of attempt children; a bad ``GRAFLOW_ATTEMPT_START_METHOD`` is refused here,
    before the first attempt (so it fails the task at once instead of being retried)."""
    chosen = os.environ.get(START_METHOD_ENV)
    available = [m for m in START_METHODS if m in multiprocessing.get_all_start_methods()]
    if not chosen:
        return available[0]
    if chosen not in available:
        reason = (
            " (fork is refused: a forked child inherits the parent's threads and locks in an unknown state, "
            "and its copy of the lifeline pipe would keep it from noticing the parent's death)"
            if chosen == "fork"
            else ""
        )
        error = ValueError(
            f"{START_METHOD_ENV}={chosen!r} is not a start method for timed attempts; use one of "
            f"{', '.join(available)}, or unset it{reason}"
        )
        setattr(error, VERDICT, False)
        raise error
    return chosen


def _context() -> Any:
    method = start_method()
    context = multiprocessing.get_context(method)
    if method == "forkserver":
        context.set_forkserver_preload(["graflow.core.attempt_process"])
    return context


def attempt_in_child(handler: TaskHandler, task: TaskWrapper, tctx: TaskExecutionContext) -> Any:
    """Run one attempt of the request being executed here in a child; kill it at the deadline."""
    ectx = tctx.execution_context
    request: remote.RemoteRequest = ectx.request
    channel = ectx.channel
    if isinstance(channel, JournalChannel):  # a snapshot channel: the child starts from what it holds now
        request = attrs.evolve(request, channel_data=channel.base.items(), attempt=tctx._attempts)
    else:
        request = attrs.evolve(request, attempt=tctx._attempts)  # the child's ctx.retry_count
    request.context = remote.attempt_context(request)  # what is current here (a trace span) goes along
    timeout = task.attempts.timeout if task.attempts is not None else None
    outcome = _run_child(request, timeout, task, tctx)
    if outcome.channel_ops and isinstance(channel, JournalChannel):
        apply_channel_ops(channel, outcome.channel_ops)  # journaled again here, so they reach the run
    if outcome.error is not None:
        if outcome.retryable is not None:  # decided where the exception was real (retry_on)
            with contextlib.suppress(AttributeError, TypeError):
                setattr(outcome.error, VERDICT, outcome.retryable)
        raise outcome.error
    tctx._next_tasks = [t for t, _ in outcome.next_tasks] or None
    tctx._goto = any(goto for _, goto in outcome.next_tasks)
    tctx._iterate = outcome.iterate
    tctx._control = outcome.control
    tctx._checkpoints = outcome.checkpoints
    return outcome.result


def _run_child(
    request: remote.RemoteRequest, timeout: float | None, task: TaskWrapper, tctx: TaskExecutionContext
) -> Any:
    context = _context()
    result_r, result_w = context.Pipe(duplex=False)
    life_r, life_w = context.Pipe(duplex=False)
    payload = remote.dumps_request(request, None)  # unsigned: it goes down a private pipe to our own child
    child = context.Process(
        target=_child_main, args=(payload, result_w, life_r), name=f"graflow-attempt:{task.task_id}"
    )
    child.start()
    result_w.close()  # ours closed: EOF on result_r means the child died
    life_r.close()
    data: bytes | None = None
    try:
        if not result_r.poll(timeout):
            _kill_group(child)
            log.warning(
                "task_attempt_killed",
                task_id=task.task_id,
                cycle=tctx.cycle_count,
                attempt=getattr(tctx, "_attempts", 1),
                timeout_s=timeout,
                pid=child.pid,
            )
            raise timed_out(task, tctx, f"its process (pid {child.pid}) was killed, with the processes it started")
        with contextlib.suppress(EOFError):
            data = result_r.recv_bytes()
        if data is None:  # died before reporting: what it started goes too
            _kill_group(child)
    finally:
        life_w.close()
        result_r.close()
        child.join(5.0)
        if child.is_alive():
            child.kill()
            child.join()
    if data is None:
        raise ExecutionError(
            f"the process running task {task.task_id!r} (cycle {tctx.cycle_count}) "
            f"{_how_it_ended(child.exitcode)} before reporting"
        )
    return remote.loads_outcome(data, None)


def _kill_group(child: Any) -> None:
    """SIGKILL the child's process group (it leads one, see :func:`_child_main`); just the child when
    it has not got that far yet."""
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            child.kill()


def _how_it_ended(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (out of memory? killed by hand?)" if -code == signal.SIGKILL else ""
        return f"was killed by {name}{hint}"
    return f"exited with code {code} (a crash in native code? os._exit() in the task?)"


def _child_main(payload: bytes, result_w: Connection, life_r: Connection) -> None:
    # A group of its own: killing it at the deadline kills what the attempt started, and signals
    # sent to the parent's group (a worker's shutdown, Ctrl-C) leave the decision to the parent.
    with contextlib.suppress(OSError):
        os.setsid()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, args=(life_r,), name="graflow-lifeline", daemon=True).start()
    try:
        request = remote.loads_request(payload, None, check_versions=False)
        outcome = remote.run_request(request, once=True)
        data = remote.dumps_outcome(outcome, None)
    except BaseException as exc:  # the parent must learn why, not just that the child died
        data = remote.dumps_outcome(_unrunnable(payload, exc), None)
    result_w.send_bytes(data)
    _REPORTED.set()
    result_w.close()


def _unrunnable(payload: bytes, error: BaseException) -> MemberOutcome:
    """The outcome of a request this child could not load or run: the error described (its class
    may be what failed to load), never retried (the next child would fail the same way)."""
    header = remote.peek_header(payload)
    described = remote.describe_error(error)
    described.add_note(
        "A timed attempt runs in a fresh process (forkserver or spawn): the task, its arguments and "
        "their modules must be importable there (define the task in a module, not in a script's "
        "__main__ or an interactive session)."
    )
    outcome = MemberOutcome(str(header.get("task_id", "?")), int(header.get("cycle", 0)), error=described)
    outcome.retryable = False
    return outcome


def _exit_with_parent(life_r: Connection) -> None:
    """Block until the parent closes its end. After our report that means it is done with us;
    before it, the parent died (or gave up on us): kill our group, the attempt included, at once."""
    with contextlib.suppress(EOFError, OSError):
        life_r.recv_bytes()
    if _REPORTED.is_set():
        return
    if os.getpgid(0) == os.getpid():  # never the parent's group (when setsid failed)
        with contextlib.suppress(OSError):
            os.killpg(os.getpid(), signal.SIGKILL)
    os._exit(ORPHAN_EXIT)
