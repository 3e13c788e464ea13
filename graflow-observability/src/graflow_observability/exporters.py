"""Span exporters chosen by an environment variable, for processes nobody configures in code.

A worker started by ``graflow worker`` runs no application code before it takes tasks, so its
tracing is set up from ``GRAFLOW_OTEL_EXPORTER`` (read by :mod:`graflow_observability.autoload`):

* ``console``: each span as JSON on stderr, when it ends;
* ``file:PATH``: each span as one JSON line appended to ``PATH`` when it ends (``{pid}`` in ``PATH``
  becomes the process id); for tests and debugging;
* ``otlp``: batches to an OTLP collector, configured by the standard ``OTEL_EXPORTER_OTLP_*``
  variables (needs ``pip install opentelemetry-exporter-otlp``).

Anything richer (sampling, several exporters, resource attributes in code) belongs in a plugin
module of your own or in the OpenTelemetry SDK's own configuration.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Sequence
from typing import IO

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)

from graflow.exceptions import GraflowError
from graflow_observability.settings import EXPORTER_ENV

FORMS = "console, file:PATH, otlp"


class JsonLinesSpanExporter(SpanExporter):
    """Appends each span as one line of JSON (``ReadableSpan.to_json``) to a file.

    Each line is one ``write`` on a file opened for appending, so several processes can share a
    file; read it back with ``json.loads`` per line.
    """

    def __init__(self, path: str) -> None:
        self.path = path.replace("{pid}", str(os.getpid()))
        self._lock = threading.Lock()
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        data = "".join(span.to_json(indent=None) + "\n" for span in spans).encode()
        with self._lock:
            if self._fd is None:
                return SpanExportResult.FAILURE
            os.write(self._fd, data)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def processor_for(setting: str, stream: IO[str] | None = None) -> SpanProcessor:
    """The span processor for one ``GRAFLOW_OTEL_EXPORTER`` value; a bad value names the valid forms."""
    value = setting.strip()
    if value == "console":
        return SimpleSpanProcessor(ConsoleSpanExporter(out=stream or sys.stderr))
    if value.startswith("file:") and len(value) > len("file:"):
        path = value[len("file:") :]
        try:
            return SimpleSpanProcessor(JsonLinesSpanExporter(path))
        except OSError as exc:
            raise GraflowError(
                f"{EXPORTER_ENV}={setting!r}: cannot open {path!r} to append spans ({exc.strerror or exc}). "
                f"Create its directory, or point {EXPORTER_ENV} at a file this process can write "
                f"(or unset it, or set GRAFLOW_OTEL=off)."
            ) from exc
    if value == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[import-not-found]
                OTLPSpanExporter,
            )
        except ImportError as exc:
            raise GraflowError(
                f"{EXPORTER_ENV}=otlp needs the OTLP exporter: pip install opentelemetry-exporter-otlp"
            ) from exc
        return BatchSpanProcessor(OTLPSpanExporter())
    raise GraflowError(f"{EXPORTER_ENV}={setting!r} is not an exporter Graflow knows; use one of: {FORMS}")


def provider_from_setting(setting: str) -> TracerProvider:
    """A TracerProvider exporting as ``setting`` says; service name ``graflow`` unless
    ``OTEL_SERVICE_NAME`` or ``OTEL_RESOURCE_ATTRIBUTES`` names one."""
    attributes = {}
    if "OTEL_SERVICE_NAME" not in os.environ and "service.name" not in os.environ.get("OTEL_RESOURCE_ATTRIBUTES", ""):
        attributes["service.name"] = "graflow"
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(processor_for(setting))
    return provider
