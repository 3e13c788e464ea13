"""Built-in result-cache stores: ``memory`` (this process) and ``file`` (a directory, the default)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from graflow.cache import memory
from graflow.cache.file import FileCacheStore
from graflow.hookspecs import hookimpl
from graflow.plugins.registry import Registrar


def _memory(config: Mapping[str, Any]) -> memory.MemoryCacheStore:
    return memory.SHARED  # one per process: entries serve every run in it


def _file(config: Mapping[str, Any]) -> FileCacheStore:
    return FileCacheStore.from_config(config)


@hookimpl
def graflow_register_cache_stores(register: Registrar) -> None:
    register("memory", _memory)
    register("file", _file)
