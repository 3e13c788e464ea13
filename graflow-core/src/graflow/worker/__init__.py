"""Worker processes: ``TaskWorker`` runs tasks that parallel groups publish to a shared queue."""

from graflow.worker.protocol import QueueDepth, WorkItem, WorkSource
from graflow.worker.worker import TaskWorker

__all__ = ["QueueDepth", "TaskWorker", "WorkItem", "WorkSource"]
