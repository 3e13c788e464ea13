"""Compatibility with upstream Graflow 0.2's ``examples/05_distributed`` (GraflowAI/graflow).

Follows ``redis_basics.py`` (a run whose channel is Redis, given a live ``redis_client`` in
``config``) and ``distributed_workflow.py`` (three extractions on a worker fleet, then an
aggregation reading their results). Upstream's distributed example enqueues ``TaskSpec``s by hand
on a ``RedisTaskQueue(key_prefix=...)`` and polls for results; in Graflow that is one line,
``(a | b | c).with_execution(backend=CoordinationBackend.REDIS)``, and the engine waits for the
fleet. Workers are real processes started through the CLI, against a private redis-server.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import cloudpickle
import pytest
import redis

from graflow.coordination.coordinator import CoordinationBackend
from graflow.core.context import ExecutionContext
from graflow.core.decorators import task
from graflow.core.engine import WorkflowEngine
from graflow.core.graph import TaskGraph
from graflow.core.workflow import workflow

cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = pytest.mark.redis


@pytest.mark.parametrize("decode_responses", [False, True], ids=["bytes", "decode_responses"])
def test_redis_basics_channel_backend_with_a_live_client(redis_url: str, decode_responses: bool) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=decode_responses)
    graph = TaskGraph()

    @task
    def test_task() -> str:
        return "test_result"

    graph.add_node(test_task, "test_task")
    context = ExecutionContext.create(graph, "test_task", channel_backend="redis", config={"redis_client": client})
    WorkflowEngine().execute(context)
    assert context.get_result("test_task") == "test_result"
    assert context.channel_backend == "redis"


@pytest.mark.slow
def test_distributed_workflow_extracts_on_workers_then_aggregates(
    redis_url: str, start_worker: Callable[..., Any]
) -> None:
    start_worker("worker-1")
    start_worker("worker-2")
    client = redis.Redis.from_url(redis_url)

    with workflow("distributed_etl") as ctx:

        @task
        def extract_source_1() -> dict[str, Any]:
            return {"source": "source_1", "records": 1000}

        @task
        def extract_source_2() -> dict[str, Any]:
            return {"source": "source_2", "records": 1500}

        @task
        def extract_source_3() -> dict[str, Any]:
            return {"source": "source_3", "records": 800}

        @task(inject_context=True)
        def aggregate_results(context: Any) -> dict[str, Any]:
            sources = [context.get_result(f"extract_source_{i}") for i in (1, 2, 3)]
            return {"sources": sources, "total_records": sum(s["records"] for s in sources)}

        extractions = (extract_source_1 | extract_source_2 | extract_source_3).with_execution(
            backend=CoordinationBackend.REDIS
        )
        extractions >> aggregate_results
        exec_context = ExecutionContext.create(
            ctx.graph, extractions.task_id, channel_backend="redis", max_steps=20, config={"redis_client": client}
        )
        result = WorkflowEngine().execute(exec_context)
    assert result["total_records"] == 3300
    assert [s["source"] for s in result["sources"]] == ["source_1", "source_2", "source_3"]


def test_channel_list_and_counter_spellings_on_redis(redis_url: str) -> None:
    """``channel.atomic_add`` and ``channel.prepend`` (upstream spellings) on the Redis channel."""
    graph = TaskGraph()

    @task(inject_context=True)
    def writer(ctx: Any) -> tuple[Any, Any]:
        channel = ctx.get_channel()
        channel.atomic_add("counter", 2)
        channel.atomic_add("counter", 3)
        channel.prepend("stack", "first")
        channel.prepend("stack", "second")
        return channel.get("counter"), channel.get("stack")

    graph.add_node(writer)
    context = ExecutionContext.create(graph, "writer", channel_backend="redis", config={"redis_url": redis_url})
    assert WorkflowEngine().execute(context) == (5, ["second", "first"])
