"""What a worker slot does with one delivery: load it (refusing what must not be loaded), run it, and
turn the outcome into the bytes that travel back. Kept apart from the thread choreography of
:mod:`graflow.worker.worker`."""

from __future__ import annotations

import random
import time
from typing import Any

from graflow.coordination.base import MemberOutcome
from graflow.core import remote
from graflow.exceptions import PayloadRejectedError, UnknownNameError
from graflow.worker.protocol import WorkItem


def execute_item(
    item: WorkItem, key: bytes | None, worker_id: str, log: Any
) -> tuple[MemberOutcome, float, str | None]:
    """Run one delivery; never raises for a task's failure, a refused payload, or a missing handler.

    Returns the outcome, the seconds it took, and the name of the task's handler (``None`` when the
    payload could not be loaded). A payload that fails its signature or version check is never
    unpickled: it becomes the task's failure, with a ``payload_rejected`` log line saying why.
    """
    started = time.perf_counter()
    handler: str | None = None
    try:
        request = remote.loads_request(item.payload, key)
    except PayloadRejectedError as exc:
        log.error("payload_rejected", task_id=item.task_id, item_id=item.item_id, reason=str(exc))
        outcome = MemberOutcome(item.task_id, item.cycle, error=exc, worker_id=worker_id)
    except Exception as exc:  # e.g. the task's module is not importable here
        log.error("payload_unreadable", task_id=item.task_id, error=f"{type(exc).__name__}: {exc}")
        exc.add_note(f"Worker {worker_id!r} could not load task {item.task_id!r}: install its code there.")
        outcome = MemberOutcome(item.task_id, item.cycle, error=exc, worker_id=worker_id)
    else:
        handler = request.task.handler
        outcome = remote.run_request(request, worker_id, key=key)
        error = outcome.error
        if isinstance(error, UnknownNameError) and error.kind == "handler":
            error.add_note(
                f"Raised on worker {worker_id!r}: install the package that provides handler "
                f"{error.name!r} on the workers too."
            )
    if outcome.error is not None:
        log.warning(
            "task_failed",
            task_id=item.task_id,
            cycle=item.cycle,
            error=f"{type(outcome.error).__name__}: {outcome.error}",
        )
    return outcome, time.perf_counter() - started, handler


def dumps_outcome(outcome: MemberOutcome, key: bytes | None) -> bytes:
    """The outcome as a payload; if even that fails, a payload describing why (never lose a report)."""
    try:
        return remote.dumps_outcome(outcome, key)
    except Exception as exc:
        failed = MemberOutcome(outcome.task_id, outcome.cycle, error=exc, worker_id=outcome.worker_id)
        return remote.dumps_outcome(failed, key)


class Backoff:
    """Exponential delays with jitter for retrying a queue that is unreachable."""

    def __init__(self, base: float = 0.05, cap: float = 2.0) -> None:
        self.base, self.cap, self.attempt = base, cap, 0

    def next(self) -> float:
        delay = min(self.cap, self.base * 2.0**self.attempt) * (0.5 + random.random() / 2)
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0
