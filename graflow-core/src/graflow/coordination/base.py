"""The coordination contract: how the members of one parallel group get executed."""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from graflow.queue.base import NO_DATA

if TYPE_CHECKING:
    from graflow.core.context import ExecutionContext
    from graflow.core.remote import RemoteRequest
    from graflow.core.task import Executable, ParallelGroup


class CoordinationBackend(enum.StrEnum):
    """Built-in names for ``ParallelGroup.with_execution(backend=...)``.

    ``REDIS`` is provided by the graflow-redis package; without it the engine raises an error saying
    so. Any other name a plugin registers works too, as a plain string.
    """

    DIRECT = "direct"
    THREADING = "threading"
    MULTIPROCESSING = "multiprocessing"
    REDIS = "redis"

    def __str__(self) -> str:
        return self.value


@attrs.define(slots=True)
class MemberRun:
    """One execution of one member: its first run (cycle 1) or a ``next_iteration`` re-run."""

    task_id: str
    cycle: int
    data: Any = NO_DATA


@attrs.define(slots=True)
class MemberOutcome:
    """What one member execution produced. Crosses process boundaries (pickled) for remote backends.

    ``channel_ops`` is ``None`` when the member wrote to the run's channel directly, or a journal to
    replay on the run's channel (see :class:`graflow.channels.JournalChannel`).
    """

    task_id: str
    cycle: int
    result: Any = None
    error: BaseException | None = None
    next_tasks: list[tuple[Executable, bool]] = attrs.Factory(list)
    iterate: tuple[Any] | None = None
    control: tuple[str, str] | None = None
    checkpoints: list[tuple[dict[str, Any], str | None]] | None = None  # deferred requests, in order
    channel_ops: list[tuple[str, str, Any]] | None = None
    duration_s: float = 0.0
    worker_id: str | None = None
    cache_hit: str | None = None  # the cache key, when the result came from the result cache there
    attempts: int = 1  # attempts the member took (retries); last, so positional construction keeps working
    # Whether ``error`` may be retried, decided where it was raised (a timed attempt's child process,
    # see graflow.core.attempt_process); None: let the receiver judge by the exception it got.
    retryable: bool | None = None


class MemberRunner(Protocol):
    """What the engine gives a coordinator to execute members with."""

    context: ExecutionContext
    group: ParallelGroup

    def run_member(self, run: MemberRun) -> MemberOutcome:
        """Execute in this process (thread-safe); never raises for a task failure."""
        ...

    def build_request(self, run: MemberRun) -> RemoteRequest:
        """Everything another process needs to execute the member (arguments resolved here)."""
        ...


class GroupCoordinator(ABC):
    """Runs the members of one group execution. The engine drives it:

    ``open`` once, then ``submit`` the first runs, then ``collect`` until every run it submitted came
    back (re-submitting ``next_iteration`` runs as they arrive), then ``close`` (always, also on
    errors). ``collect`` blocks until at least one outcome is ready and must not busy-wait.
    """

    @abstractmethod
    def open(self, runner: MemberRunner) -> None:
        """Prepare for one group execution."""

    @abstractmethod
    def submit(self, runs: Sequence[MemberRun]) -> None:
        """Start these runs (without waiting for them)."""

    @abstractmethod
    def collect(self, timeout: float | None = None) -> list[MemberOutcome]:
        """Outcomes of finished runs: at least one, unless ``timeout`` seconds passed (then none)."""

    def close(self) -> None:  # noqa: B027 - optional
        """Release threads, processes or connections; cancel what has not started."""

    def abort(self) -> None:
        """The group is abandoned (timeout, run failure): release without waiting for running members.

        Defaults to :meth:`close`; backends whose ``close`` waits for running work override it.
        """
        self.close()
