"""TypedChannel: a channel of typed messages, each key holding one whole ``T`` (upstream Graflow's form).

``context.get_typed_channel(UserProfile).set("current_user", {...})`` stores a complete, valid
``UserProfile`` under any key. For the other reading, each field of ``T`` a channel key of its own,
see :class:`graflow.channels.fields.FieldChannel`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from graflow.channels.base import Channel
from graflow.channels.schema import Schema, schema_of

T = TypeVar("T")
_MISSING: Any = object()


def _validated_update(fn: Callable[[Any], Any], schema: type[Any], key: str, current: Any) -> Any:
    # Module-level and built from picklable parts: in a process-pool member the update travels back
    # in the channel journal and is replayed by the run.
    return schema_of(schema).message(fn(current), f"update of key {key!r}")


class TypedChannel(Generic[T]):
    """Every value is a whole message of type ``T``, validated on write and on read.

    ``T`` is a TypedDict (a dict with the required keys, no unknown keys, values of the declared
    types; nested TypedDicts and container elements are checked too) or an attrs class (an instance,
    or a mapping that builds one: the instance is what is stored). A bad value raises ``TypeError``
    saying what is wrong, and nothing is stored. Reading a key that holds something else (written
    through the untyped channel) raises ``TypeError`` too, rather than hand back a wrong shape.
    """

    def __init__(self, channel: Channel, schema: type[T]) -> None:
        self.channel = channel
        self.schema = schema
        self._schema: Schema = schema_of(schema)

    @property
    def message_type(self) -> type[T]:
        """The message type (upstream's name for :attr:`schema`)."""
        return self.schema

    def validate(self, value: Any, key: str = "?") -> T:
        """``value`` as a valid ``T`` (a mapping becomes an attrs instance), else ``TypeError``."""
        message: T = self._schema.message(value, f"value for key {key!r}")
        return message

    def set(self, key: str, value: T | Any) -> None:
        self.channel.set(key, self.validate(value, key))

    def get(self, key: str, default: Any = None) -> T | Any:
        """The message under ``key``, or ``default`` when there is none."""
        value = self.channel.get(key, _MISSING)
        if value is _MISSING:
            return default
        try:  # a value written through the untyped channel must still be a valid T
            return self._schema.message(value, f"key {key!r}")
        except TypeError as exc:
            raise TypeError(f"{exc} (it was written without validation, e.g. through get_channel())") from None

    def send(self, key: str, message: T | Any) -> None:
        """Upstream's name for :meth:`set`."""
        self.set(key, message)

    def receive(self, key: str, default: Any = None) -> T | Any:
        """Upstream's name for :meth:`get`."""
        return self.get(key, default)

    def update(self, key: str, fn: Callable[[Any], Any], default: Any = None) -> T:
        """Atomically replace the message under ``key`` with ``fn(current or default)``, validated."""
        checked = functools.partial(_validated_update, fn, self.schema, key)
        result: T = self.channel.update(key, checked, default)
        return result

    def exists(self, key: str) -> bool:
        return key in self.channel

    def __contains__(self, key: str) -> bool:
        return key in self.channel

    def keys(self) -> list[str]:
        """Every key of the underlying channel (a typed channel is a view, not a separate store)."""
        return list(self.channel.keys())

    def delete(self, key: str) -> bool:
        return self.channel.delete(key)
