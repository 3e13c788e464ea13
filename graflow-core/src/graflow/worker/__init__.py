"""Worker processes: ``TaskWorker`` runs tasks that parallel groups publish to a shared queue."""

from graflow.worker.protocol import WorkItem, WorkSource
from graflow.worker.worker import TaskWorker

__all__ = ["TaskWorker", "WorkItem", "WorkSource"]
