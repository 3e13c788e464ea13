"""Prometheus metrics from ``graflow worker`` (entry point ``prometheus``): ``--metrics-port 9108``.

The plugin adds ``--metrics-port``/``--metrics-addr`` to the worker command line. Without a port it
does nothing else: no registry, no server, and its per-task hook returns at once (one dictionary
look-up). With one, the worker serves ``/metrics`` over HTTP from a registry of its own:

* counters ``graflow_worker_tasks_processed_total`` and ``graflow_worker_tasks_failed_total`` and the
  histogram ``graflow_worker_task_duration_seconds``, labelled ``queue`` and ``handler``, updated
  as each delivery finishes;
* gauges ``graflow_worker_tasks_in_flight`` and ``graflow_worker_slots``, read from the worker at
  scrape time;
* ``graflow_queue_depth`` (waiting), ``graflow_queue_running`` and the counter
  ``graflow_queue_dead_lettered_total``, labelled ``queue``: the backend's
  :meth:`~graflow.worker.CountsDepth.depth`, asked once per scrape (left out for a backend without
  it). They describe the whole queue, so every worker of a fleet reports the same values: aggregate
  them with ``max by (queue)``.
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any

import graflow
from graflow.logs import get_logger
from graflow_observability.settings import ADDR_ENV, PORT_ENV

if TYPE_CHECKING:
    from graflow_observability.worker_metrics import WorkerMetrics

log = get_logger("graflow.observability")

DEFAULT_ADDR = "127.0.0.1"

METRIC_NAMES = (
    "graflow_worker_tasks_processed_total",
    "graflow_worker_tasks_failed_total",
    "graflow_worker_task_duration_seconds",
    "graflow_worker_tasks_in_flight",
    "graflow_worker_slots",
    "graflow_queue_depth",
    "graflow_queue_running",
    "graflow_queue_dead_lettered_total",
)
"""Every metric family a worker exports (a histogram adds ``_bucket``, ``_count`` and ``_sum``)."""


_ACTIVE: dict[Any, WorkerMetrics] = {}
"""Workers of this process serving metrics, by worker object (ids need not be unique: two workers
of one process may share one, the default host-pid)."""


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--metrics-port must be a port number, got {value!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"--metrics-port must be between 0 and 65535, got {port}")
    return port


@graflow.hookimpl
def graflow_worker_add_options(parser: argparse.ArgumentParser) -> None:
    raw_port = os.environ.get(PORT_ENV)
    parser.add_argument(
        "--metrics-port",
        type=_port,
        default=raw_port or None,  # argparse converts a string default with type=, errors included
        help=f"serve Prometheus metrics on this port (env {PORT_ENV}; default: no metrics). From graflow-observability",
    )
    parser.add_argument(
        "--metrics-addr",
        default=os.environ.get(ADDR_ENV, DEFAULT_ADDR),
        help=f"address the metrics endpoint listens on; 0.0.0.0 to be scraped from other hosts "
        f"(env {ADDR_ENV}; default: {DEFAULT_ADDR})",
    )


@graflow.hookimpl
def graflow_worker_started(worker_id: str, worker: Any, queue: Any, options: dict[str, Any]) -> None:
    port = options.get("metrics_port")
    if port is None:
        return
    from graflow_observability.worker_metrics import WorkerMetrics  # prometheus_client: only when asked for

    queue_name = str(getattr(queue, "queue_name", None) or options.get("queue") or "default")
    metrics = WorkerMetrics(worker, queue, queue_name)
    addr, bound = metrics.serve(str(options.get("metrics_addr") or DEFAULT_ADDR), int(port))
    _ACTIVE[worker] = metrics
    log.info("metrics_serving", worker_id=worker_id, url=f"http://{addr}:{bound}/metrics", port=bound)


def metrics_address(worker: Any) -> tuple[str, int] | None:
    """Where ``worker`` (a TaskWorker of this process) serves its metrics, ``None`` when it does not:
    the port bound for ``--metrics-port 0``."""
    metrics = _ACTIVE.get(worker)
    return None if metrics is None else metrics.address


@graflow.hookimpl
def graflow_worker_task_done(worker: Any, handler: str | None, duration_s: float, error: BaseException | None) -> None:
    metrics = _ACTIVE.get(worker)
    if metrics is not None:
        metrics.task_done(handler, duration_s, error)


@graflow.hookimpl
def graflow_worker_stopped(worker: Any) -> None:
    metrics = _ACTIVE.pop(worker, None)
    if metrics is not None:
        metrics.close()
