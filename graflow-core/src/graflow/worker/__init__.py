"""Worker processes: ``TaskWorker`` runs tasks that parallel groups publish to a shared queue."""

from graflow.worker.protocol import CountsDepth, QueueDepth, WorkItem, WorkSource
from graflow.worker.worker import TaskWorker

__all__ = ["CountsDepth", "QueueDepth", "TaskWorker", "WorkItem", "WorkSource"]
