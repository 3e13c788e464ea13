"""A WorkSource in memory, for driving a TaskWorker inside one test process (no Redis)."""

from __future__ import annotations

import threading
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from graflow.worker import QueueDepth, WorkItem


class MemorySource:
    """Every WorkSource method, nothing more: what a backend written before ``depth()`` offers."""

    worker_timeout = 5.0
    queue_name = "mem"

    def __init__(self, items: Sequence[WorkItem] = ()) -> None:
        self.items = list(items)
        self.completed: list[tuple[WorkItem, bytes]] = []
        self.cond = threading.Condition()

    def fetch(
        self, consumer: str, max_items: int, block_s: float, done: Sequence[tuple[WorkItem, bytes]] = ()
    ) -> list[WorkItem]:
        self.complete(consumer, done)
        with self.cond:
            self.cond.wait_for(lambda: bool(self.items), timeout=block_s)
            taken, self.items = self.items[:max_items], self.items[max_items:]
            return taken

    def complete(self, consumer: str, done: Sequence[tuple[WorkItem, bytes]]) -> None:
        with self.cond:
            self.completed.extend(done)
            self.cond.notify_all()

    def release(self, consumer: str, items: Sequence[WorkItem]) -> None:
        with self.cond:
            self.items.extend(items)

    def heartbeat(self, consumer: str, info: Mapping[str, Any]) -> None:
        pass

    def reclaim(self) -> int:
        return 0

    def release_lost(self, consumer: str, known: Collection[str], min_idle_s: float) -> int:
        return 0

    def leave(self, consumer: str) -> None:
        pass

    def workers(self) -> dict[str, dict[str, Any]]:
        return {}

    def close(self) -> None:
        pass


class CountingMemorySource(MemorySource):
    """A MemorySource that also says how much waits (``graflow.worker.CountsDepth``)."""

    def depth(self) -> QueueDepth:
        with self.cond:
            return QueueDepth(waiting=len(self.items), running=0)
