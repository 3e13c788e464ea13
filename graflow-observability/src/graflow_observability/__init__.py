"""graflow-observability: OpenTelemetry tracing for Graflow runs and Prometheus metrics for workers.

Installing the package registers two plugins through the ``graflow`` entry points:

* ``otel`` (:mod:`graflow_observability.autoload`): spans per run, group and task attempt, on when
  the process configures tracing (see that module), off and free otherwise;
* ``prometheus`` (:mod:`graflow_observability.metrics`): ``graflow worker --metrics-port 9108``.

In code: ``WorkflowEngine(plugins=[TracingPlugin(tracer_provider)])``. Names are imported on first
use, so discovering the plugins loads neither the OpenTelemetry SDK nor prometheus_client.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from graflow_observability._version import VERSION as __version__
from graflow_observability.metrics import METRIC_NAMES

if TYPE_CHECKING:
    from graflow_observability.exporters import JsonLinesSpanExporter
    from graflow_observability.tracing import TRACER_NAME, TracingPlugin
    from graflow_observability.worker_metrics import WorkerMetrics

_LAZY = {
    "JsonLinesSpanExporter": "graflow_observability.exporters",
    "TRACER_NAME": "graflow_observability.tracing",
    "TracingPlugin": "graflow_observability.tracing",
    "WorkerMetrics": "graflow_observability.worker_metrics",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'graflow_observability' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = ["METRIC_NAMES", "TRACER_NAME", "JsonLinesSpanExporter", "TracingPlugin", "WorkerMetrics", "__version__"]
