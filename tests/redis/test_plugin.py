"""Installing graflow-redis makes its backends available by name, without importing redis early."""

from __future__ import annotations

import subprocess
import sys

import pytest
import redis

import graflow_redis
from graflow import CoordinationBackend, ExecutionContext, task, workflow
from graflow.plugins.manager import default_host
from graflow_redis import RedisChannel, RedisCoordinator, RedisTaskQueue

pytestmark = pytest.mark.redis  # a private redis-server (see conftest.py)


def test_names_registered_through_the_entry_point() -> None:
    host = default_host()
    assert host.get("queue backend", "redis").plugin == "redis"
    assert host.get("channel backend", "redis").plugin == "redis"
    assert host.get("coordination backend", CoordinationBackend.REDIS.value).plugin == "redis"


def test_discovering_the_plugin_does_not_import_redis() -> None:
    code = (
        "import sys; from graflow.plugins.manager import default_host; default_host(); "
        "print('redis' in sys.modules, 'graflow_redis.queue' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_package_exports_and_unknown_names() -> None:
    assert set(graflow_redis.__all__) >= {"RedisTaskQueue", "RedisChannel", "RedisCoordinator"}
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = graflow_redis.Nope


def test_context_with_redis_backends_from_a_live_client(redis_url: str) -> None:
    @task
    def start() -> str:
        return "ok"

    with workflow("w") as wf:
        wf.add(start)
    client = redis.Redis.from_url(redis_url)
    ctx = ExecutionContext.create(
        wf.graph, queue_backend="redis", channel_backend="redis", config={"redis_client": client}
    )
    assert isinstance(ctx.queue, RedisTaskQueue)
    assert isinstance(ctx.channel, RedisChannel)
    assert [s.task_id for s in ctx.queue.pending()] == ["start"]
    ctx.channel.set("x", (1, 2))
    assert RedisChannel(ctx.session_id, redis_url=redis_url).get("x") == (1, 2)


def test_spec_style_queue_built_from_a_context(redis_url: str) -> None:
    with workflow("w") as wf:
        wf.add(task(lambda: 1))  # type: ignore[arg-type]
    ctx = ExecutionContext.create(wf.graph, config={"redis_url": redis_url})
    queue = RedisTaskQueue(ctx, redis_client=redis.Redis.from_url(redis_url))
    assert queue.session_id == ctx.session_id
    assert len(queue) == 0


def test_queue_without_session_refuses_ready_queue_use(redis_url: str) -> None:
    with pytest.raises(Exception, match="has no session"):
        RedisTaskQueue(redis_url=redis_url).get()


def test_coordinator_reads_settings_from_config(redis_url: str) -> None:
    coordinator = RedisCoordinator({"redis_url": redis_url, "queue_name": "gpu", "worker_timeout": 3})
    assert coordinator.queue.queue_name == "gpu"
    assert coordinator.queue.worker_timeout == 3.0
