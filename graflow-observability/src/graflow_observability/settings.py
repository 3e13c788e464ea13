"""The environment variables the package reads (kept apart so reading their names imports nothing)."""

from __future__ import annotations

SWITCH_ENV = "GRAFLOW_OTEL"
"""``on``/``off``: the installed tracing plugin (see :mod:`graflow_observability.autoload`)."""
EXPORTER_ENV = "GRAFLOW_OTEL_EXPORTER"
"""``console``, ``file:PATH`` or ``otlp`` (see :mod:`graflow_observability.exporters`)."""
PORT_ENV = "GRAFLOW_METRICS_PORT"
"""Default of ``graflow worker --metrics-port``."""
ADDR_ENV = "GRAFLOW_METRICS_ADDR"
"""Default of ``graflow worker --metrics-addr``."""
