"""The in-process queue: a deque, the embedded default."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from graflow.queue.base import TaskQueue, TaskSpec


class MemoryTaskQueue(TaskQueue):
    """A deque; appends and pops are atomic under the GIL, so no lock is needed."""

    def __init__(self, specs: Iterable[TaskSpec] = ()) -> None:
        self._items: deque[TaskSpec] = deque(specs)

    def put(self, spec: TaskSpec) -> None:
        self._items.append(spec)

    def put_many(self, specs: Iterable[TaskSpec]) -> None:
        self._items.extend(specs)

    def get(self) -> TaskSpec | None:
        try:
            return self._items.popleft()
        except IndexError:
            return None

    def pending(self) -> list[TaskSpec]:
        return list(self._items)

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)
