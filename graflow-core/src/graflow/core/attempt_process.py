"""One attempt of a timed task in a child process that is killed at the deadline.

Used where a task runs away from its run (a process-pool member, a worker delivery): there the
attempt must really stop at its ``timeout``, and only a process can be stopped. The child runs the
same :class:`~graflow.core.remote.RemoteRequest` for one attempt and sends back its
:class:`~graflow.coordination.base.MemberOutcome` (result or error, channel journal, ``next_task``
requests) over a pipe; the parent applies it as if the attempt had run in place.

Children come from a ``forkserver`` (``spawn`` where there is none; ``GRAFLOW_ATTEMPT_START_METHOD``
overrides): a worker has threads and open connections, which a plain ``fork`` would copy in an
unknown state. The first child of a process starts the fork server (~0.1-0.2 s); later ones take a
few milliseconds. A child whose parent dies (a worker killed, a pool process stopped by a group
abort) exits as well: it watches a pipe that only the parent holds open.
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
from graflow.core import remote
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
ORPHAN_EXIT = 70
"""Exit code of a child whose parent went away before it finished."""


def _context() -> Any:
    method = os.environ.get(START_METHOD_ENV) or (
        "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    )
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
            child.kill()
            log.warning(
                "task_attempt_killed",
                task_id=task.task_id,
                cycle=tctx.cycle_count,
                attempt=getattr(tctx, "_attempts", 1),
                timeout_s=timeout,
                pid=child.pid,
            )
            raise timed_out(task, tctx, f"its process (pid {child.pid}) was killed")
        with contextlib.suppress(EOFError):
            data = result_r.recv_bytes()
    finally:
        life_w.close()
        result_r.close()
        child.join(5.0)
        if child.is_alive():
            child.kill()
            child.join()
    if data is None:
        raise ExecutionError(
            f"the process running task {task.task_id!r} (cycle {tctx.cycle_count}) died with exit code "
            f"{child.exitcode} before reporting (out of memory? a crash in native code?)"
        )
    return remote.loads_outcome(data, None)


def _child_main(payload: bytes, result_w: Connection, life_r: Connection) -> None:
    # Ctrl-C in a terminal reaches the whole process group: the parent decides (a worker stops
    # gracefully, letting its tasks finish), so the attempt must not die of KeyboardInterrupt first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, args=(life_r,), name="graflow-lifeline", daemon=True).start()
    request = remote.loads_request(payload, None, check_versions=False)
    outcome = remote.run_request(request, once=True)
    result_w.send_bytes(remote.dumps_outcome(outcome, None))
    result_w.close()


def _exit_with_parent(life_r: Connection) -> None:
    """Block until the parent closes its end (it finished with us, or it died), then leave at once."""
    with contextlib.suppress(EOFError, OSError):
        life_r.recv_bytes()
    os._exit(ORPHAN_EXIT)
