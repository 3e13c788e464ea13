"""Built-in queue, channel and coordination backends: everything runs in this process."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from graflow.channels.memory import MemoryChannel
from graflow.coordination.builtin import DirectCoordinator, MultiprocessingCoordinator, ThreadingCoordinator
from graflow.hookspecs import hookimpl
from graflow.plugins.registry import Registrar
from graflow.queue.memory import MemoryTaskQueue


def _memory_queue(session_id: str, config: Mapping[str, Any]) -> MemoryTaskQueue:
    return MemoryTaskQueue()


def _memory_channel(session_id: str, config: Mapping[str, Any]) -> MemoryChannel:
    return MemoryChannel(session_id)


@hookimpl
def graflow_register_queue_backends(register: Registrar) -> None:
    register("memory", _memory_queue)


@hookimpl
def graflow_register_channel_backends(register: Registrar) -> None:
    register("memory", _memory_channel)


@hookimpl
def graflow_register_coordinators(register: Registrar) -> None:
    register("direct", DirectCoordinator)
    register("threading", ThreadingCoordinator)
    register("multiprocessing", MultiprocessingCoordinator)
