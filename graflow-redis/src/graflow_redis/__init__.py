"""graflow-redis: distributed execution on a TaskWorker fleet, Redis channels, and a Redis task queue.

Installing it registers, by name: queue backend ``redis``, channel backend ``redis``, coordination
backend ``redis`` (``CoordinationBackend.REDIS``), checkpoint scheme ``redis://`` and result-cache
store ``redis``. The classes are
importable for direct use; they load lazily, so discovering the plugin does not import redis.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from graflow_redis.cache import RedisCacheStore as RedisCacheStore
    from graflow_redis.channel import RedisChannel as RedisChannel
    from graflow_redis.checkpoint import RedisCheckpointStore as RedisCheckpointStore
    from graflow_redis.coordinator import RedisCoordinator as RedisCoordinator
    from graflow_redis.coordinator import TaskDeadLetteredError as TaskDeadLetteredError
    from graflow_redis.queue import RedisTaskQueue as RedisTaskQueue
    from graflow_redis.settings import RedisSettings as RedisSettings

_EXPORTS = {
    "RedisCacheStore": "graflow_redis.cache",
    "RedisChannel": "graflow_redis.channel",
    "RedisCheckpointStore": "graflow_redis.checkpoint",
    "RedisCoordinator": "graflow_redis.coordinator",
    "RedisSettings": "graflow_redis.settings",
    "RedisTaskQueue": "graflow_redis.queue",
    "TaskDeadLetteredError": "graflow_redis.coordinator",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'graflow_redis' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
