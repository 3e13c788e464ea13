"""Fixtures for graflow-observability: an in-memory span exporter, and the private redis-server and
CLI-started workers of tests/support (for the distributed tracing and metrics tests)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))

from graflow_test_redis import redis_client, redis_server, redis_url, start_worker

__all__ = ["exporter", "provider", "redis_client", "redis_server", "redis_url", "start_worker"]


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    """A TracerProvider of the test's own (the global one is never set in the test process)."""
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield tracer_provider
    tracer_provider.shutdown()
