"""RedisCacheStore (``cache_store="redis"``): cached task results as Redis strings, shared by a fleet.

Each entry is one ``SET`` with ``PX`` (its TTL in milliseconds; without one, config ``cache_ttl``,
default 30 days: no Redis key Graflow writes lives forever), under
``{p}:cache:{task}:{digest}`` (:func:`graflow_redis.keys.cache_key`), so Redis itself expires
entries and every worker and submitter that reaches the server shares them. The connection and the
prefix come from the config like every other graflow-redis component (``redis_url``,
``redis_client``, ``REDIS_URL``, ..., ``key_prefix``); a worker opens the store from the request's
``cache_config``, which carries the URL and prefix (:meth:`RedisCacheStore.shipping_config`), never
the client or a secret. Entries are bytes the result cache already signed when a key is set.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import redis

from graflow.cache.base import CacheKey, CacheStore
from graflow_redis.connection import Reconnecting, client_from_config, url_of
from graflow_redis.keys import cache_key, cache_pattern
from graflow_redis.settings import RedisSettings

SCAN_COUNT = 1000


class RedisCacheStore(CacheStore):
    """Cache entries on the Redis server ``client`` talks to, under ``settings.key_prefix``."""

    def __init__(self, client: redis.Redis, settings: RedisSettings | None = None, url: str | None = None) -> None:
        self.client = client
        self.settings = settings or RedisSettings()
        self._url = url
        self._retry = Reconnecting("cache", self.settings.reconnect_timeout)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> RedisCacheStore:
        return cls(client_from_config(config), RedisSettings.from_config(config), config.get("redis_url"))

    def shipping_config(self) -> dict[str, Any]:
        """The URL (an explicit ``redis_url`` wins over the client's, as in ``shippable_config``)
        and the prefix: what a worker needs to open the same entries."""
        return {"redis_url": self._url or url_of(self.client), "key_prefix": self.settings.key_prefix}

    def _key(self, key: CacheKey) -> str:
        return cache_key(self.settings.key_prefix, key.task_id, key.digest)

    def get(self, key: CacheKey) -> bytes | None:
        data: Any = self._retry(self.client.get, self._key(key))
        return None if data is None else bytes(data)

    def set(self, key: CacheKey, data: bytes, ttl: float | None) -> None:
        px = max(1, round((ttl if ttl is not None else self.settings.cache_ttl) * 1000))
        self._retry(self.client.set, self._key(key), data, px=px)

    def delete(self, key: CacheKey) -> bool:
        return bool(self._retry(self.client.delete, self._key(key)))

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

        return self._retry(scan_and_delete)
