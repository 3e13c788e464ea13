"""Result caching: ``@task(cache=True)``, the stores, and invalidation (README, "Result caching")."""

from graflow.cache.api import clear, invalidate, key_of
from graflow.cache.base import DEFAULT_STORE, CacheKey, CacheStore
from graflow.cache.file import FileCacheStore, default_cache_dir
from graflow.cache.memory import MemoryCacheStore

__all__ = [
    "DEFAULT_STORE",
    "CacheKey",
    "CacheStore",
    "FileCacheStore",
    "MemoryCacheStore",
    "clear",
    "default_cache_dir",
    "invalidate",
    "key_of",
]
