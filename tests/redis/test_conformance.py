"""RedisTaskQueue and RedisChannel pass the backend suites the built-in memory backends pass."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
import redis

from graflow.channels.base import Channel
from graflow.queue.base import TaskQueue
from graflow.testing import ChannelBackendSuite, QueueBackendSuite
from graflow_redis import RedisChannel, RedisTaskQueue

pytestmark = pytest.mark.redis  # a private redis-server (see conftest.py)


class TestRedisQueue(QueueBackendSuite):
    @pytest.fixture
    def backend(self, redis_url: str) -> TaskQueue:
        return RedisTaskQueue(redis_url=redis_url, session_id=uuid.uuid4().hex)


class TestSignedRedisQueue(QueueBackendSuite):
    @pytest.fixture
    def backend(self, redis_url: str) -> TaskQueue:
        return RedisTaskQueue(redis_url=redis_url, session_id=uuid.uuid4().hex, secret_key="k")


class TestRedisChannel(ChannelBackendSuite):
    @pytest.fixture
    def backend(self, redis_url: str) -> Channel:
        return RedisChannel(uuid.uuid4().hex, redis_url=redis_url)

    @pytest.fixture
    def same_channel(self, backend: RedisChannel, redis_url: str) -> Callable[[], Channel]:
        # Each handle gets its own client, as a handle in another process would.
        return lambda: RedisChannel(backend.name, redis_client=redis.Redis.from_url(redis_url))


class TestSignedRedisChannel(ChannelBackendSuite):
    @pytest.fixture
    def backend(self, redis_url: str) -> Channel:
        return RedisChannel(uuid.uuid4().hex, redis_url=redis_url, secret_key="k")

    @pytest.fixture
    def same_channel(self, backend: RedisChannel, redis_url: str) -> Callable[[], Channel]:
        return lambda: RedisChannel(backend.name, redis_client=redis.Redis.from_url(redis_url), secret_key="k")
