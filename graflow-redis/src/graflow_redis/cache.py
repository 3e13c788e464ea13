"""RedisCacheStore (``cache_store="redis"``): cached task results as Redis strings, shared by a fleet.

Each entry is one ``SET`` with ``PX`` (its TTL in milliseconds; without one, config ``cache_ttl``,
default 30 days: no Redis key Graflow writes lives forever), under
``{p}:cache:{task}:{digest}`` (:func:`graflow_redis.keys.cache_key`), so Redis itself expires
entries and every worker and submitter that reaches the server shares them. The connection and the
prefix come from the config like every other graflow-redis component (``redis_url``,
``redis_client``, ``REDIS_URL``, ..., ``key_prefix``); a worker opens the store from the request's
``cache_config``, which carries the URL and prefix (:meth:`RedisCacheStore.shipping_config`), never
the client or the signing key (the URL goes as resolved, a password in it included, as in the
queue's payloads). Entries are bytes the result cache already signed when a key is set.

A cache is an optimisation, so the store never waits out an outage the way queues and channels do
(``reconnect_timeout``): it talks to Redis through its own connections with short timeouts
(:data:`CONNECT_TIMEOUT_S`, :data:`SOCKET_TIMEOUT_S`) and no retries, and a failed read or write
raises at once; the runtime turns that into a miss or an uncached result with a
``cache_read_failed`` / ``cache_write_failed`` warning. Invalidation (``delete``, ``clear``)
raises too, so a caller knows nothing was removed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from graflow.cache.base import CacheKey, CacheStore
from graflow_redis.connection import REFUSED, access_error, client_from_config, redis_url, url_of
from graflow_redis.keys import cache_key, cache_pattern
from graflow_redis.settings import RedisSettings

T = TypeVar("T")

SCAN_COUNT = 1000
CONNECT_TIMEOUT_S = 0.5
"""How long the store waits to connect: a down or unreachable server costs a cached task this much
per read and per write, then the task runs uncached."""
SOCKET_TIMEOUT_S = 2.0
"""How long the store waits for a reply (a large entry arrives in many reads, each within this)."""

_clients: dict[str, redis.Redis] = {}
_clients_lock = threading.Lock()


def cache_client(client: redis.Redis) -> redis.Redis:
    """A client for the server ``client`` talks to, with the store's own short timeouts and no
    retries; shared per process and server (its connection pool is separate from ``client``'s)."""
    kwargs = dict(client.connection_pool.connection_kwargs)
    kwargs.update(
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        socket_timeout=SOCKET_TIMEOUT_S,
        retry=Retry(NoBackoff(), 0),
        decode_responses=False,
    )
    marker = repr(sorted((k, repr(v)) for k, v in kwargs.items() if k != "retry"))
    with _clients_lock:
        found = _clients.get(marker)
        if found is None:
            pool = redis.ConnectionPool(connection_class=client.connection_pool.connection_class, **kwargs)
            found = _clients[marker] = redis.Redis(connection_pool=pool)
        return found


def _call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """One try: a refused login says what to fix; anything else (down, timed out) raises as is."""
    try:
        return fn(*args, **kwargs)
    except REFUSED as exc:
        raise access_error(exc) from exc


class RedisCacheStore(CacheStore):
    """Cache entries on the Redis server ``client`` talks to, under ``settings.key_prefix``."""

    def __init__(self, client: redis.Redis, settings: RedisSettings | None = None, url: str | None = None) -> None:
        self.client = cache_client(client)
        self.settings = settings or RedisSettings()
        self._url = url

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> RedisCacheStore:
        # Without a client, none is built and kept in the shared ones just to copy its settings.
        given = config.get("redis_client")
        client = client_from_config(config) if given is not None else redis.Redis.from_url(redis_url(config))
        return cls(client, RedisSettings.from_config(config), config.get("redis_url"))

    def shipping_config(self) -> dict[str, Any]:
        """The URL (an explicit ``redis_url`` wins over the client's, as in ``shippable_config``)
        and the prefix: what a worker needs to open the same entries."""
        return {"redis_url": self._url or url_of(self.client), "key_prefix": self.settings.key_prefix}

    def _key(self, key: CacheKey) -> str:
        return cache_key(self.settings.key_prefix, key.task_id, key.digest)

    def get(self, key: CacheKey) -> bytes | None:
        data: Any = _call(self.client.get, self._key(key))
        return None if data is None else bytes(data)

    def set(self, key: CacheKey, data: bytes, ttl: float | None) -> None:
        px = max(1, round((ttl if ttl is not None else self.settings.cache_ttl) * 1000))
        _call(self.client.set, self._key(key), data, px=px)

    def delete(self, key: CacheKey) -> bool:
        return bool(_call(self.client.delete, self._key(key)))

    def clear(self, task_id: str | None = None) -> int:
        pattern = cache_pattern(self.settings.key_prefix, task_id)

        def scan_and_delete() -> int:
            removed = 0
            batch: list[Any] = []
            for name in self.client.scan_iter(match=pattern, count=SCAN_COUNT):
                batch.append(name)
                if len(batch) >= SCAN_COUNT:
                    removed += int(self.client.delete(*batch))
                    batch = []
            if batch:
                removed += int(self.client.delete(*batch))
            return removed

        return _call(scan_and_delete)
