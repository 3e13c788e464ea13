"""What a TaskWorker needs from a queue backend: deliveries to take, outcomes to hand back, liveness.

graflow-core ships no implementation (an in-process queue cannot feed another process); graflow-redis's
``RedisTaskQueue`` is the reference one. The contract is at-least-once:

* ``fetch`` hands this consumer up to ``max_items`` deliveries, blocking up to ``block_s`` when there
  are none, and never more than asked (a worker asks only for as many as it has free slots); it may
  carry outcomes to complete first;
* a delivery stays owned by its consumer until ``complete`` (outcome recorded and delivery
  acknowledged, atomically per item) or ``release`` (given back for any worker to take now);
* a consumer that stops calling ``heartbeat`` for ``worker_timeout`` seconds is dead, and ``reclaim``
  (called by any live worker or submitter) gives its deliveries to others. A delivery that keeps
  killing its workers is dead-lettered by the backend instead of being handed out forever;
* a live consumer can own a delivery without knowing it (the reply that carried it was lost with the
  connection): ``release_lost`` gives such deliveries back, so they do not wait forever.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import attrs


@attrs.define(slots=True)
class WorkItem:
    """One delivery of one task execution to one consumer.

    ``item_id`` is the backend's delivery id; ``route`` is backend data telling ``complete`` where the
    outcome goes (opaque to the worker). ``task_id``/``cycle`` are known without loading ``payload``, so
    a payload that is refused can still be reported as that task's failure.
    """

    item_id: str
    task_id: str
    cycle: int
    payload: bytes
    route: Any = None


@attrs.frozen
class QueueDepth:
    """How much work a queue holds now (what monitoring asks for, e.g. a queue-depth gauge).

    ``waiting``: deliveries no consumer has taken yet. ``running``: taken and not yet completed or
    released. ``dead_lettered``: deliveries the backend gave up on since the queue was created (a
    running total), ``None`` when the backend does not count them.
    """

    waiting: int
    running: int
    dead_lettered: int | None = None


@runtime_checkable
class WorkSource(Protocol):
    """A queue backend that TaskWorker processes consume."""

    worker_timeout: float
    """Seconds without a heartbeat after which a consumer counts as dead."""

    def fetch(
        self, consumer: str, max_items: int, block_s: float, done: Sequence[tuple[WorkItem, bytes]] = ()
    ) -> list[WorkItem]:
        """Take up to ``max_items`` deliveries for ``consumer``; ``[]`` when ``block_s`` passed without any
        (``block_s=0``: look without waiting).

        ``done`` is first completed as by :meth:`complete`, in the same round trip: a slot that found
        no next task reports and waits for one at once.
        """
        ...

    def complete(self, consumer: str, done: Sequence[tuple[WorkItem, bytes]]) -> None:
        """Record each outcome payload where its item's route says, and acknowledge the items."""
        ...

    def release(self, consumer: str, items: Sequence[WorkItem]) -> None:
        """Give ``items`` back unfinished, for any consumer to take at once (graceful shutdown)."""
        ...

    def heartbeat(self, consumer: str, info: Mapping[str, Any]) -> None:
        """Say ``consumer`` is alive for ``worker_timeout`` more seconds; ``info`` is what others read."""
        ...

    def reclaim(self) -> int:
        """Hand the deliveries of dead consumers to live ones; returns how many items moved."""
        ...

    def release_lost(self, consumer: str, known: Collection[str], min_idle_s: float) -> int:
        """Give back the deliveries ``consumer`` owns that are not in ``known`` (the ids it holds) and
        were delivered at least ``min_idle_s`` seconds ago; returns how many. The age keeps a
        delivery whose reply is still on its way from being taken for lost."""
        ...

    def leave(self, consumer: str) -> None:
        """``consumer`` exits cleanly: forget its heartbeat (call after releasing what it held)."""
        ...

    def workers(self) -> dict[str, dict[str, Any]]:
        """The ``info`` of every live consumer, by consumer name."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


@runtime_checkable
class CountsDepth(Protocol):
    """A :class:`WorkSource` that can also say how much work it holds (graflow-redis's can).

    Optional: a worker never needs it; monitoring (graflow-observability's queue gauges) uses it
    when the backend offers it and leaves those gauges out otherwise.
    """

    def depth(self) -> QueueDepth:
        """How much work the queue holds now, in one round trip and without scanning entries: it is
        called on every scrape of a metrics endpoint."""
        ...


__all__ = ["CountsDepth", "QueueDepth", "WorkItem", "WorkSource"]
