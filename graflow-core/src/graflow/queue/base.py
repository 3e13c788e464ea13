"""The queue contract: where a run keeps the tasks that are ready to execute, in order."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any

import attrs

NO_DATA: Any = type("NoData", (), {"__repr__": lambda self: "NO_DATA", "__reduce__": lambda self: "NO_DATA"})()
"""Marks a TaskSpec that carries no ``next_iteration`` data (``None`` is valid data)."""


@attrs.define(slots=True)
class TaskSpec:
    """One pending execution: which task, and the ``next_iteration`` data it receives, if any.

    A plain mutable slots class, not frozen: one is built per executed task on the hot path.
    """

    task_id: str
    data: Any = NO_DATA


class TaskQueue(ABC):
    """FIFO of ready tasks for one session.

    ``get`` never blocks: an empty queue means the run has nothing left to do (work running
    elsewhere is awaited by the coordinator that sent it, not through this queue).
    """

    @abstractmethod
    def put(self, spec: TaskSpec) -> None:
        """Append one ready task."""

    def put_many(self, specs: Iterable[TaskSpec]) -> None:
        """Append several, in order (backends batch this)."""
        for spec in specs:
            self.put(spec)

    @abstractmethod
    def get(self) -> TaskSpec | None:
        """Pop the oldest ready task, or ``None`` when the queue is empty."""

    @abstractmethod
    def pending(self) -> list[TaskSpec]:
        """Every queued spec in order, without removing them (for checkpoints)."""

    @abstractmethod
    def clear(self) -> None:
        """Drop every queued spec."""

    @abstractmethod
    def __len__(self) -> int: ...

    def close(self) -> None:  # noqa: B027 - optional
        """Release connections; queued specs stay where the backend keeps them."""
