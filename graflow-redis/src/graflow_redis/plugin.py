"""Entry point of graflow-redis: registers the ``redis`` queue, channel and coordination backends and
the ``redis://`` checkpoint scheme, and the ``redis`` result-cache store.

Imported at every plugin discovery, so it imports nothing heavy: redis and the backends load inside
the factories, the first time a workflow names them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from graflow.hookspecs import hookimpl
from graflow.plugins.registry import Registrar

if TYPE_CHECKING:
    from graflow_redis.cache import RedisCacheStore
    from graflow_redis.channel import RedisChannel
    from graflow_redis.checkpoint import RedisCheckpointStore
    from graflow_redis.coordinator import RedisCoordinator
    from graflow_redis.queue import RedisTaskQueue


def _queue(session_id: str, config: Mapping[str, Any]) -> RedisTaskQueue:
    from graflow_redis.queue import RedisTaskQueue

    return RedisTaskQueue.from_config(session_id, config)


def _channel(session_id: str, config: Mapping[str, Any]) -> RedisChannel:
    from graflow_redis.channel import RedisChannel

    return RedisChannel.from_config(session_id, config)


def _coordinator(config: Mapping[str, Any]) -> RedisCoordinator:
    from graflow_redis.coordinator import RedisCoordinator

    return RedisCoordinator(config)


def _checkpoint_store(config: Mapping[str, Any]) -> RedisCheckpointStore:
    from graflow_redis.checkpoint import RedisCheckpointStore

    return RedisCheckpointStore.from_config(config)


@hookimpl
def graflow_register_queue_backends(register: Registrar) -> None:
    register("redis", _queue)


@hookimpl
def graflow_register_channel_backends(register: Registrar) -> None:
    register("redis", _channel)


@hookimpl
def graflow_register_coordinators(register: Registrar) -> None:
    register("redis", _coordinator)


@hookimpl
def graflow_register_checkpoint_stores(register: Registrar) -> None:
    register("redis", _checkpoint_store)


def _cache_store(config: Mapping[str, Any]) -> RedisCacheStore:
    from graflow_redis.cache import RedisCacheStore

    return RedisCacheStore.from_config(config)


@hookimpl
def graflow_register_cache_stores(register: Registrar) -> None:
    register("redis", _cache_store)
