"""A cached task on a real ``graflow worker``: the second run is served from the Redis cache."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from graflow import CoordinationBackend, TaskWrapper, WorkflowEngine, hookimpl, workflow

pytestmark = [pytest.mark.redis, pytest.mark.slow]


class HitRecorder:
    def __init__(self) -> None:
        self.hits: list[tuple[str, str]] = []

    @hookimpl
    def graflow_task_cache_hit(self, task_id: str, key: str) -> None:
        self.hits.append((task_id, key))


@pytest.mark.parametrize("store", ["redis", "file"])
def test_a_cached_member_on_a_worker_hits_the_cache_on_the_second_run(
    store: str, redis_url: str, redis_client: redis.Redis, start_worker: Callable[..., Any], tmp_path: Path
) -> None:
    start_worker("cache-worker", "--queue", "cache")

    def expensive(ctx: Any, n: int) -> dict[str, int]:  # defined here: the worker gets it by value
        ctx.get_channel().increment("executions")
        return {"n": n, "square": n * n}

    recorder = HitRecorder()
    config = {"redis_url": redis_url, "cache_store": store, "cache_dir": str(tmp_path / "files")}

    def run() -> tuple[Any, Any]:
        with workflow("cached-on-workers") as wf:
            (
                TaskWrapper("e1", expensive, inject_context=True, cache=True, kwargs={"n": 3})
                | TaskWrapper("e2", expensive, inject_context=True, cache=True, kwargs={"n": 4})
            ).with_execution(backend=CoordinationBackend.REDIS, queue_name="cache", group_timeout=60)
        result, ctx = wf.execute(ret_context=True, config=config, engine=WorkflowEngine(plugins=[recorder]))
        return result, ctx.channel.get("executions")

    expected = {"e1": {"n": 3, "square": 9}, "e2": {"n": 4, "square": 16}}
    assert run() == (expected, 2)
    assert recorder.hits == []
    assert run() == (expected, None)  # nothing executed: both members came from the cache on the worker
    assert sorted(task_id for task_id, _ in recorder.hits) == ["e1", "e2"]
    if store == "redis":
        assert len(list(redis_client.scan_iter("graflow:cache:e*"))) == 2
    else:
        assert len(list((tmp_path / "files").glob("e*/*.entry"))) == 2
