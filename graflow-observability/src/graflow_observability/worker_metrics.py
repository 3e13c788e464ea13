"""The Prometheus registry of one worker: counters and a histogram updated per delivery, gauges read
at scrape time, served over HTTP (see :mod:`graflow_observability.metrics` for the metric list).

Imported only by a worker started with ``--metrics-port``: prometheus_client is not loaded otherwise.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import start_http_server
from prometheus_client.registry import Collector

from graflow.exceptions import GraflowError
from graflow.logs import get_logger
from graflow.worker import CountsDepth
from graflow_observability.settings import ADDR_ENV, PORT_ENV

log = get_logger("graflow.observability")

DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, float("inf"))


class _LiveCollector(Collector):
    """Values read at scrape time: the worker's busy slots and the queue's depth (one round trip)."""

    def __init__(self, worker: Any, queue: Any, queue_name: str) -> None:
        self.worker, self.queue_name = worker, queue_name
        self.depth = queue.depth if isinstance(queue, CountsDepth) else None  # optional for a backend

    def collect(self) -> Iterator[Metric]:
        labels = [self.queue_name]
        in_flight = GaugeMetricFamily(
            "graflow_worker_tasks_in_flight", "Tasks this worker is executing now.", labels=["queue"]
        )
        in_flight.add_metric(labels, self.worker.tasks_running)
        yield in_flight
        slots = GaugeMetricFamily(
            "graflow_worker_slots", "Tasks this worker can execute at once (--max-concurrent-tasks).", labels=["queue"]
        )
        slots.add_metric(labels, self.worker.max_concurrent_tasks)
        yield slots
        if self.depth is None:
            return
        try:
            depth = self.depth()
        except Exception as exc:  # the queue is unreachable: say so in the log, keep serving the rest
            log.warning("queue_depth_failed", queue=self.queue_name, error=f"{type(exc).__name__}: {exc}")
            return
        waiting = GaugeMetricFamily(
            "graflow_queue_depth", "Tasks in the queue that no worker has taken yet.", labels=["queue"]
        )
        waiting.add_metric(labels, depth.waiting)
        yield waiting
        running = GaugeMetricFamily(
            "graflow_queue_running", "Tasks of the queue taken by a worker and not yet completed.", labels=["queue"]
        )
        running.add_metric(labels, depth.running)
        yield running
        if depth.dead_lettered is not None:
            dead = CounterMetricFamily(
                "graflow_queue_dead_lettered",
                "Tasks of the queue ever dead-lettered (they took down max_deliveries workers).",
                labels=["queue"],
            )
            dead.add_metric(labels, depth.dead_lettered)
            yield dead


class WorkerMetrics:
    """The metrics of one worker, in a registry of their own (several workers may share a process)."""

    def __init__(self, worker: Any, queue: Any, queue_name: str) -> None:
        self.queue_name = queue_name
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ["queue", "handler"]
        self.processed = Counter(
            "graflow_worker_tasks_processed",
            "Deliveries this worker finished, succeeded or failed.",
            labels,
            registry=self.registry,
        )
        self.failed = Counter(
            "graflow_worker_tasks_failed",
            "Deliveries this worker finished with an error (the task raised, or its payload was refused).",
            labels,
            registry=self.registry,
        )
        self.duration = Histogram(
            "graflow_worker_task_duration_seconds",
            "Seconds from loading a delivery to its outcome, per task.",
            labels,
            registry=self.registry,
            buckets=DURATION_BUCKETS,
        )
        self.registry.register(_LiveCollector(worker, queue, queue_name))
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.address: tuple[str, int] | None = None

    def task_done(self, handler: str | None, duration_s: float, error: BaseException | None) -> None:
        labels = (self.queue_name, handler or "unknown")
        self.processed.labels(*labels).inc()
        if error is not None:
            self.failed.labels(*labels).inc()
        self.duration.labels(*labels).observe(duration_s)

    def serve(self, addr: str, port: int) -> tuple[str, int]:
        """Serve ``/metrics`` on ``addr:port`` (port 0: any free one); returns the address bound."""
        try:
            self._server, self._thread = start_http_server(port, addr=addr, registry=self.registry)
        except OSError as exc:
            raise GraflowError(
                f"cannot serve metrics on {addr}:{port}: {exc.strerror or exc}. Choose another --metrics-port "
                f"(env {PORT_ENV}) or --metrics-addr (env {ADDR_ENV})."
            ) from exc
        host, bound = self._server.server_address[:2]
        self.address = (str(host), int(bound))
        return self.address

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
