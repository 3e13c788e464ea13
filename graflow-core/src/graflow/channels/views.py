"""Channel views: a namespace inside a channel, and a journal that records writes to replay elsewhere."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from graflow.channels.base import Channel

NAMESPACE_SEPARATOR = "::"

# A journal entry: (operation, key, argument). Replayed in order by apply_channel_ops.
ChannelOp = tuple[str, str, Any]


class NamespacedChannel(Channel):
    """Keys of ``base`` that start with ``namespace::``, seen without the prefix."""

    def __init__(self, base: Channel, namespace: str) -> None:
        self.base = base
        self.name = namespace
        self._prefix = namespace + NAMESPACE_SEPARATOR

    def set(self, key: str, value: Any) -> None:
        self.base.set(self._prefix + key, value)

    def get(self, key: str, default: Any = None) -> Any:
        return self.base.get(self._prefix + key, default)

    def delete(self, key: str) -> bool:
        return self.base.delete(self._prefix + key)

    def keys(self) -> list[str]:
        n = len(self._prefix)
        return [k[n:] for k in self.base.keys() if k.startswith(self._prefix)]

    def clear(self) -> None:
        for key in self.keys():
            self.delete(key)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and (self._prefix + key) in self.base

    def update(self, key: str, fn: Callable[[Any], Any], default: Any = None) -> Any:
        return self.base.update(self._prefix + key, fn, default)

    def increment(self, key: str, amount: int | float = 1) -> int | float:
        return self.base.increment(self._prefix + key, amount)

    def append(self, key: str, value: Any) -> list[Any]:
        return self.base.append(self._prefix + key, value)


class JournalChannel(Channel):
    """Applies writes to ``base`` and records them, so another process's channel can replay them.

    Used where a task runs away from its run's channel (a process pool, a Docker container, a worker
    whose run keeps an in-memory channel): the task reads a snapshot, and its writes travel back as
    this journal. ``increment``/``append``/``update`` are journaled as operations, not values, so
    members of one group that each increment a counter add up on the host.
    """

    def __init__(self, base: Channel) -> None:
        self.base = base
        self.name = base.name
        self.ops: list[ChannelOp] = []

    def set(self, key: str, value: Any) -> None:
        self.base.set(key, value)
        self.ops.append(("set", key, value))

    def get(self, key: str, default: Any = None) -> Any:
        return self.base.get(key, default)

    def delete(self, key: str) -> bool:
        self.ops.append(("delete", key, None))
        return self.base.delete(key)

    def keys(self) -> list[str]:
        return self.base.keys()

    def clear(self) -> None:
        self.ops.append(("clear", "", None))
        self.base.clear()

    def __contains__(self, key: object) -> bool:
        return key in self.base

    def update(self, key: str, fn: Callable[[Any], Any], default: Any = None) -> Any:
        self.ops.append(("update", key, (fn, default)))
        return self.base.update(key, fn, default)

    def increment(self, key: str, amount: int | float = 1) -> int | float:
        self.ops.append(("increment", key, amount))
        return self.base.increment(key, amount)

    def append(self, key: str, value: Any) -> list[Any]:
        self.ops.append(("append", key, value))
        return self.base.append(key, value)


def apply_channel_ops(channel: Channel, ops: Sequence[ChannelOp]) -> None:
    """Replay a journal onto ``channel`` with the channel's own atomic operations."""
    for op, key, arg in ops:
        if op == "set":
            channel.set(key, arg)
        elif op == "delete":
            channel.delete(key)
        elif op == "clear":
            channel.clear()
        elif op == "increment":
            channel.increment(key, arg)
        elif op == "append":
            channel.append(key, arg)
        elif op == "update":
            fn, default = arg
            channel.update(key, fn, default)
        else:
            raise ValueError(f"unknown channel journal operation {op!r}")
