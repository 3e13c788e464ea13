"""The redis:// checkpoint store passes the checkpoint store suite, and its keys expire."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import redis

from graflow import TaskExecutionContext, WorkflowEngine, task, workflow
from graflow.checkpoint.manager import CheckpointManager
from graflow.checkpoint.store import CheckpointStore
from graflow.exceptions import CheckpointError
from graflow.plugins.manager import default_host
from graflow.testing import CheckpointStoreSuite
from graflow_redis import RedisCheckpointStore

pytestmark = pytest.mark.redis  # a private redis-server (see conftest.py)


class TestRedisCheckpointStore(CheckpointStoreSuite):
    @pytest.fixture
    def store(self, redis_url: str) -> CheckpointStore:
        return RedisCheckpointStore.from_config({"redis_url": redis_url})

    @pytest.fixture
    def location(self) -> str:
        return f"redis://runs/{uuid.uuid4().hex[:8]}"

    @pytest.fixture
    def store_config(self, redis_url: str) -> dict[str, Any]:
        return {"redis_url": redis_url}


def test_checkpoints_at_the_root_location(redis_url: str) -> None:
    store = RedisCheckpointStore.from_config({"redis_url": redis_url})
    path = store.join("redis://", "top.pkl")
    assert path == "redis://top.pkl"
    store.write(path, b"p", b"s", lambda: b"m")
    assert store.list("redis://") == [path]
    assert store.read_part(path, "pkl") == b"p"


def test_scheme_is_registered_by_the_plugin() -> None:
    assert default_host().get("checkpoint store", "redis").plugin == "redis"


def test_checkpoint_keys_expire(redis_url: str, redis_client: redis.Redis) -> None:
    store = RedisCheckpointStore.from_config({"redis_url": redis_url, "checkpoint_ttl": 60})
    store.write("redis://a/b.pkl", b"p", b"s", lambda: b"m")
    keys = list(redis_client.scan_iter("graflow:cp*"))
    assert sorted(k.decode() for k in keys) == [
        "graflow:cp:a/b.meta.json", "graflow:cp:a/b.pkl", "graflow:cp:a/b.state.json", "graflow:cpdir:a",
    ]  # fmt: skip
    assert all(0 < redis_client.ttl(k) <= 60 for k in keys)


def test_expired_checkpoints_leave_the_listing(redis_url: str, redis_client: redis.Redis) -> None:
    store = RedisCheckpointStore.from_config({"redis_url": redis_url})
    store.write("redis://a/old.pkl", b"p", b"s", lambda: b"m")
    redis_client.delete("graflow:cp:a/old.meta.json")  # as if its TTL ran out
    assert store.list("redis://a") == []
    assert redis_client.smembers("graflow:cpdir:a") == set()


def test_other_schemes_are_refused(redis_url: str) -> None:
    with pytest.raises(CheckpointError, match="not a Redis checkpoint location"):
        RedisCheckpointStore.from_config({"redis_url": redis_url}).read_part("s3://bucket/x.pkl", "pkl")


def test_workflow_checkpoints_to_redis_and_resumes(redis_url: str) -> None:
    @task(inject_context=True)
    def step_one(context: TaskExecutionContext) -> int:
        context.get_channel().set("seen", ("tuple", 1))
        context.checkpoint(metadata={"stage": 1})
        return 20

    @task
    def step_two(step_one: int) -> int:
        return step_one + 22

    with workflow("ckpt") as wf:
        step_one >> step_two
    config = {"redis_url": redis_url, "checkpoint_dir": "redis://checkpoints"}
    context = wf.create_context(config=config)
    WorkflowEngine().execute(context)
    path = context.last_checkpoint_path
    assert path is not None and path.startswith(f"redis://checkpoints/{context.session_id}/")
    resumed, metadata = CheckpointManager.resume_from_checkpoint(path, config=config)
    assert metadata.user_metadata == {"stage": 1}
    assert resumed.get_channel().get("seen") == ("tuple", 1)
    assert WorkflowEngine().execute(resumed) == 42


def test_run_on_redis_queue_and_channel_resumes_from_a_redis_checkpoint(redis_url: str) -> None:
    @task(inject_context=True)
    def produce(context: TaskExecutionContext) -> int:
        context.get_channel().set("pair", (1, 2))
        context.checkpoint(metadata={"after": "produce"})
        return 1

    @task
    def consume(produce: int) -> int:
        return produce + 1

    with workflow("all-redis") as wf:
        produce >> consume
    config = {"redis_url": redis_url, "checkpoint_dir": "redis://ck"}
    context = wf.create_context(queue_backend="redis", channel_backend="redis", config=config)
    assert WorkflowEngine().execute(context) == 2
    assert context.last_checkpoint_path is not None
    resumed, _ = CheckpointManager.resume_from_checkpoint(context.last_checkpoint_path, config=config)
    assert [spec.task_id for spec in resumed.queue.pending()] == ["consume"]
    assert resumed.get_channel().get("pair") == (1, 2)
    assert WorkflowEngine().execute(resumed) == 2
