"""Queues: the ready tasks of a run."""

from graflow.queue.base import NO_DATA, TaskQueue, TaskSpec
from graflow.queue.memory import MemoryTaskQueue

__all__ = ["NO_DATA", "MemoryTaskQueue", "TaskQueue", "TaskSpec"]
