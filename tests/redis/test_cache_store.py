"""The ``redis`` result-cache store passes the cache store suite, expires entries, and serves runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis
from graflow_test_redis import RedisServer
from structlog.testing import capture_logs

from graflow import TaskWrapper, workflow
from graflow.cache import CacheKey, invalidate
from graflow.plugins.manager import default_host
from graflow.testing import CacheStoreSuite
from graflow_redis import RedisCacheStore
from graflow_redis.keys import cache_key

pytestmark = pytest.mark.redis  # a private redis-server (see conftest.py)


class TestRedisCacheStore(CacheStoreSuite):
    @pytest.fixture
    def store(self, redis_url: str) -> RedisCacheStore:
        return RedisCacheStore.from_config({"redis_url": redis_url})

    @pytest.fixture
    def same_store(self, redis_url: str) -> Callable[[], RedisCacheStore]:
        return lambda: RedisCacheStore(redis.Redis.from_url(redis_url))

    @pytest.fixture
    def advance(self, redis_client: redis.Redis) -> Callable[[float], None]:
        """Move the server's clock for the store's entries: each TTL shrinks by ``seconds`` (the
        store gives every entry one; an entry whose TTL runs out is gone, as Redis would expire it)."""

        def move(seconds: float) -> None:
            for name in redis_client.scan_iter("*cache:*"):
                left = int(redis_client.pttl(name)) - round(seconds * 1000)
                if left <= 0:
                    redis_client.delete(name)
                else:
                    redis_client.pexpire(name, left)

        return move


def test_the_store_is_registered_by_the_plugin() -> None:
    assert default_host().get("cache store", "redis").plugin == "redis"


def test_entries_expire_in_redis_after_their_ttl_or_the_default(redis_url: str, redis_client: redis.Redis) -> None:
    store = RedisCacheStore.from_config({"redis_url": redis_url, "key_prefix": "app"})
    store.set(CacheKey("t:1", "a" * 64), b"v", 90.0)
    store.set(CacheKey("t:1", "b" * 64), b"v", None)
    assert 0 < redis_client.pttl(f"app:cache:t%3A1:{'a' * 64}") <= 90_000
    month = 30 * 24 * 3600 * 1000
    assert month - 60_000 < redis_client.pttl(f"app:cache:t%3A1:{'b' * 64}") <= month  # never forever
    other = RedisCacheStore.from_config({"redis_url": redis_url, "key_prefix": "app", "cache_ttl": 5})
    other.set(CacheKey("t", "c" * 64), b"v", None)
    assert 0 < redis_client.pttl(f"app:cache:t:{'c' * 64}") <= 5000
    assert sorted(k.decode() for k in redis_client.scan_iter("app:cache:t%3A1:*")) == [
        cache_key("app", "t:1", "a" * 64), cache_key("app", "t:1", "b" * 64),
    ]  # fmt: skip


def test_shipping_config_carries_the_url_and_prefix_not_the_client(redis_url: str) -> None:
    store = RedisCacheStore.from_config({"redis_client": redis.Redis.from_url(redis_url), "key_prefix": "p"})
    assert store.shipping_config() == {"redis_url": redis_url, "key_prefix": "p"}


def test_a_run_caches_in_redis_and_invalidate_removes_the_entries(redis_url: str, redis_client: redis.Redis) -> None:
    calls: list[Any] = []

    def slow_square(x: int) -> int:
        calls.append(x)
        return x * x

    config = {"redis_url": redis_url, "cache_store": "redis"}
    with workflow("redis-cache") as wf:
        TaskWrapper("slow_square", slow_square, cache=True, cache_ttl=3600, kwargs={"x": 7})
    assert [wf.execute(config=config), wf.execute(config=config)] == [49, 49]
    assert calls == [7]
    (name,) = list(redis_client.scan_iter("graflow:cache:slow_square:*"))
    assert 0 < redis_client.ttl(name) <= 3600
    assert invalidate("slow_square", config=config) == 1
    assert wf.execute(config=config) == 49 and calls == [7, 7]


def test_a_stopped_server_is_a_miss_at_once_not_waited_out(redis_server: RedisServer, redis_url: str) -> None:
    """A cache is an optimisation: the store never waits out an outage (reconnect_timeout is for
    queues and channels), each read and write fails once, and the task runs uncached."""
    calls: list[int] = []

    def square(x: int) -> int:
        calls.append(x)
        return x * x

    config = {"redis_url": redis_url, "cache_store": "redis", "reconnect_timeout": 2}
    with workflow("redis-down") as wf:
        TaskWrapper("square", square, cache=True, kwargs={"x": 3})
    assert wf.execute(config=config) == 9
    redis_server.stop()
    try:
        with capture_logs() as logs:
            assert [wf.execute(config=config), wf.execute(config=config)] == [9, 9]
    finally:
        redis_server.start()
    assert calls == [3, 3, 3]  # no hit while the server is down, and no failed run
    events = [e["event"] for e in logs]
    assert events.count("cache_read_failed") == 2 and events.count("cache_write_failed") == 2
    assert "redis_unavailable" not in events  # not retried with the queue's reconnect budget
    assert all(e.get("store") == "redis" for e in logs if e["event"].startswith("cache_"))


def test_the_store_does_not_share_the_callers_client_and_its_long_timeouts(redis_url: str) -> None:
    caller = redis.Redis.from_url(redis_url, socket_timeout=30)
    store = RedisCacheStore.from_config({"redis_client": caller})
    assert store.client is not caller
    kwargs = store.client.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] < 30 and kwargs["socket_connect_timeout"] < 30
    store.set(CacheKey("t", "d" * 64), b"v", 60.0)
    assert caller.get(cache_key("graflow", "t", "d" * 64)) == b"v"  # the same server and entries
