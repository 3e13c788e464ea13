"""AttemptOptions: how often a task is tried, how long to wait between tries, how long one try may run.

A value type only (validation and the delay formula): the attempt loop is :mod:`graflow.core.attempts`.
Kept free of engine imports so that :mod:`graflow.core.task` can build it when a task is declared.
"""

from __future__ import annotations

import math
import random
import threading
import weakref
from typing import TYPE_CHECKING, Any

import attrs

from graflow.exceptions import (
    MaxCyclesExceededError,
    MaxStepsExceededError,
    MissingParameterError,
    PayloadRejectedError,
    SerializationError,
    TimeoutNotSupportedError,
    UnknownNameError,
    WorkflowCancelledError,
)

if TYPE_CHECKING:
    from graflow.core.task import TaskWrapper

DEFAULT_RETRY_DELAY = 1.0
DEFAULT_BACKOFF = 2.0
DEFAULT_MAX_DELAY = 60.0

NEVER_RETRIED: tuple[type[BaseException], ...] = (
    KeyboardInterrupt,
    SystemExit,
    GeneratorExit,
    # Graflow's own verdicts: running the function again cannot change them.
    WorkflowCancelledError,
    MaxStepsExceededError,
    MaxCyclesExceededError,
    MissingParameterError,
    PayloadRejectedError,
    UnknownNameError,
    TimeoutNotSupportedError,
    SerializationError,  # a result or argument that cannot be pickled will not pickle next time either
)
"""Errors no ``retry_on`` can make retryable: interrupts, and errors that say the run (not the
attempt) is wrong (a missing argument, an unknown handler, a refused payload, a cancelled run, a
value that cannot cross a process boundary)."""

VERDICT = "_graflow_retryable"
"""Attribute of an exception that came back from an attempt in another process (a timed attempt's
child): whether it is retryable, decided there, where the exception was real (an exception that
cannot be rebuilt here arrives as ``RemoteTaskError``, which ``retry_on`` could not match)."""

TIMED_TASKS: weakref.WeakSet[TaskWrapper] = weakref.WeakSet()
"""Every live task of this process with a ``timeout``: a run checks their handlers when it starts
(``check_timeout_handlers``), and a process without timed tasks pays nothing for that check.
Add with :func:`register_timed`, read with :func:`timed_tasks` (a task may be built in a thread)."""

_TIMED_LOCK = threading.Lock()


def register_timed(task: TaskWrapper) -> None:
    with _TIMED_LOCK:
        TIMED_TASKS.add(task)


def timed_tasks() -> tuple[TaskWrapper, ...]:
    with _TIMED_LOCK:
        return tuple(TIMED_TASKS)


def _check_number(task_id: str, option: str, value: Any, what: str = "a number of seconds") -> float:
    """A finite number no longer than ``threading.TIMEOUT_MAX`` (what a wait accepts): NaN would
    disable every comparison, and inf would fail (OverflowError) only when the wait begins."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"task {task_id!r}: {option} must be {what}, got {value!r}")
    try:
        number = float(value)
    except OverflowError:  # an int too large for a float
        number = math.inf
    if not math.isfinite(number):
        raise ValueError(
            f"task {task_id!r}: {option} must be a finite number, got {value!r}"
            + ("; leave timeout=None for no limit" if option == "timeout" else "")
        )
    if what.endswith("seconds") and number > threading.TIMEOUT_MAX:
        raise ValueError(
            f"task {task_id!r}: {option} must be at most {threading.TIMEOUT_MAX:.0f} seconds "
            f"(the longest wait Python supports), got {value!r}"
        )
    return number


@attrs.frozen
class AttemptOptions:
    """The retry and timeout options of one task (``@task(retries=..., timeout=...)``).

    ``attempt_delay(n)`` is the wait after failed attempt ``n`` (1-based):
    ``min(max_delay, retry_delay * backoff ** (n - 1))``; with ``jitter`` it is drawn uniformly from
    the upper half of that, ``[d/2, d]`` ("equal jitter": retries of many tasks that failed together
    spread out, yet never come back sooner than half the planned delay).

    Frozen and picklable: it travels with its task into checkpoints, process pools and worker payloads.
    Build it with :meth:`build`, which validates and names the task in its messages.
    """

    retries: int = 0
    retry_delay: float = DEFAULT_RETRY_DELAY
    backoff: float = DEFAULT_BACKOFF
    max_delay: float = DEFAULT_MAX_DELAY
    jitter: bool = True
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    timeout: float | None = None

    @property
    def attempts(self) -> int:
        """How many attempts at most: ``retries + 1``."""
        return self.retries + 1

    @classmethod
    def build(
        cls,
        task_id: str,
        *,
        retries: int = 0,
        retry_delay: float = DEFAULT_RETRY_DELAY,
        backoff: float = DEFAULT_BACKOFF,
        max_delay: float | None = None,
        jitter: bool = True,
        retry_on: type[BaseException] | tuple[type[BaseException], ...] | None = None,
        timeout: float | None = None,
    ) -> AttemptOptions:
        """Validated options; every message names the task, the option and what would be accepted.

        ``max_delay`` defaults to 60 s, or to ``retry_delay`` when that is longer. ``retry_on``
        defaults to ``Exception`` (see :data:`NEVER_RETRIED` for what is never retried).
        """
        if isinstance(retries, bool) or not isinstance(retries, int):
            raise TypeError(
                f"task {task_id!r}: retries must be an int (extra attempts after the first), got {retries!r}"
            )
        if retries < 0:
            raise ValueError(f"task {task_id!r}: retries must be >= 0 (0 means a single attempt), got {retries}")
        delay = _check_number(task_id, "retry_delay", retry_delay)
        if delay < 0:
            raise ValueError(f"task {task_id!r}: retry_delay must be >= 0 seconds, got {retry_delay}")
        factor = _check_number(task_id, "backoff", backoff, "a number (the delay's growth factor)")
        if factor < 1:
            raise ValueError(
                f"task {task_id!r}: backoff must be >= 1 (1 keeps the delay constant, 2 doubles it), got {backoff}"
            )
        cap = max(DEFAULT_MAX_DELAY, delay) if max_delay is None else _check_number(task_id, "max_delay", max_delay)
        if cap < delay:
            raise ValueError(
                f"task {task_id!r}: max_delay ({max_delay}) is shorter than retry_delay ({retry_delay}); "
                "raise max_delay or lower retry_delay"
            )
        if not isinstance(jitter, bool):
            raise TypeError(f"task {task_id!r}: jitter must be True or False, got {jitter!r}")
        kinds = _exception_types(task_id, retry_on)
        limit = None
        if timeout is not None:
            limit = _check_number(task_id, "timeout", timeout)
            if limit <= 0:
                raise ValueError(f"task {task_id!r}: timeout must be > 0 seconds (or None for no limit), got {timeout}")
        return cls(retries, delay, factor, cap, jitter, kinds, limit)

    def base_delay(self, attempt: int) -> float:
        """The planned wait after failed attempt ``attempt`` (1-based), before jitter."""
        try:
            planned = self.retry_delay * self.backoff ** (attempt - 1)
        except OverflowError:
            return self.max_delay
        return min(self.max_delay, planned)

    def attempt_delay(self, attempt: int, rand: Any = random.random) -> float:
        """The wait after failed attempt ``attempt``: :meth:`base_delay`, with equal jitter if enabled."""
        planned = self.base_delay(attempt)
        if not self.jitter or planned == 0:
            return planned
        return planned / 2 + planned / 2 * float(rand())

    def retryable(self, error: BaseException) -> bool:
        """Whether ``error`` may be retried (regardless of attempts left); for an error that carries
        the verdict of the process it was raised in (:data:`VERDICT`), that verdict."""
        if isinstance(error, NEVER_RETRIED):
            return False
        verdict = getattr(error, VERDICT, None)
        if verdict is not None:
            return bool(verdict)
        return isinstance(error, self.retry_on)


def _exception_types(
    task_id: str, retry_on: type[BaseException] | tuple[type[BaseException], ...] | list[Any] | None
) -> tuple[type[BaseException], ...]:
    if retry_on is None:
        return (Exception,)
    items = retry_on if isinstance(retry_on, tuple | list) else (retry_on,)
    bad = [item for item in items if not (isinstance(item, type) and issubclass(item, BaseException))]
    if bad or not items:
        shown = ", ".join(repr(b) for b in bad) or "an empty tuple"
        raise TypeError(
            f"task {task_id!r}: retry_on must be an exception class or a tuple of them, e.g. "
            f"retry_on=(IOError, TimeoutError); got {shown}"
        )
    return tuple(items)
