"""The channel contract: a workflow-scoped, namespaced key-value store shared by a run's tasks."""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any

MISSING: Any = object()


class Channel(ABC):
    """Key-value store of one session (and one namespace within it).

    Values keep their Python types. ``increment``, ``append`` and ``update`` are atomic with respect
    to other writers of the same backend, so parallel members can share counters and lists without
    losing writes; ``get`` followed by ``set`` is not.
    """

    name: str

    @abstractmethod
    def set(self, key: str, value: Any) -> None:
        """Store ``value`` under ``key``."""

    @abstractmethod
    def get(self, key: str, default: Any = None) -> Any:
        """The value under ``key``, or ``default`` when there is none."""

    @abstractmethod
    def delete(self, key: str) -> bool:
        """Remove ``key``; whether it existed."""

    @abstractmethod
    def keys(self) -> list[str]:
        """Every key in this channel."""

    @abstractmethod
    def clear(self) -> None:
        """Remove every key in this channel."""

    @abstractmethod
    def __contains__(self, key: object) -> bool: ...

    @abstractmethod
    def update(self, key: str, fn: Callable[[Any], Any], default: Any = None) -> Any:
        """Atomically replace the value with ``fn(current or default)``; returns the new value."""

    def increment(self, key: str, amount: int | float = 1) -> int | float:
        """Atomically add ``amount`` (a missing key counts as 0); returns the new value."""
        result: int | float = self.update(key, lambda v: v + amount, 0)
        return result

    def append(self, key: str, value: Any) -> list[Any]:
        """Atomically append to the list under ``key`` (a missing key is an empty list)."""
        result: list[Any] = self.update(key, lambda v: [*v, value], [])
        return result

    def prepend(self, key: str, value: Any) -> list[Any]:
        """Atomically put ``value`` first in the list under ``key`` (a missing key is an empty list)."""
        result: list[Any] = self.update(key, functools.partial(_prepended, value), [])
        return result

    def atomic_add(self, key: str, amount: int | float = 1) -> int | float:
        """``increment`` under upstream Graflow 0.2's name."""
        return self.increment(key, amount)

    def items(self) -> dict[str, Any]:
        """A snapshot of every key and value."""
        return {key: self.get(key) for key in self.keys()}

    def shipping_config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """The part of the run's ``config`` another process needs to open this same channel.

        Used when a task runs in another process against a shared backend. The default drops every
        secret (:func:`graflow.core.remote.is_secret_setting`: the signing key, passwords, tokens;
        payloads may rest in a broker); backends holding live clients replace them with something
        picklable, e.g. a URL.
        """
        from graflow.core.remote import is_secret_setting  # lazy: remote imports the channels

        return {k: v for k, v in config.items() if not is_secret_setting(k)}

    def close(self) -> None:  # noqa: B027 - optional for backends holding connections
        """Release connections; the data stays (it belongs to the session)."""

    def __getstate__(self) -> dict[str, Any]:
        raise TypeError(f"{type(self).__name__} cannot be pickled; ship its data with .items()")


def _prepended(value: Any, current: list[Any]) -> list[Any]:
    """``prepend``'s update: a module-level function, so the operation pickles into a channel journal."""
    return [value, *current]
