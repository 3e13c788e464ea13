"""FieldChannel: each field of a TypedDict or attrs class is a channel key of its own.

Useful for state that tasks update one field at a time (``epoch``, ``loss``, ``phase``), where a
whole-message :class:`graflow.channels.typed.TypedChannel` would make every writer rewrite everything.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import attrs

from graflow.channels.base import Channel
from graflow.channels.schema import Schema, schema_of

T = TypeVar("T")


def _checked_update(fn: Callable[[Any], Any], schema: type[Any], key: str, current: Any) -> Any:
    # Module-level and built from picklable parts (no self, which holds the channel): in a
    # process-pool member the update travels back in the channel journal and is replayed by the run.
    new = fn(current)
    schema_of(schema).check_field(key, new)
    return new


class FieldChannel(Generic[T]):
    """Validates every write against the field of ``T`` it names: unknown keys raise ``KeyError``,
    wrong types ``TypeError``, and nothing is stored."""

    def __init__(self, channel: Channel, schema: type[T]) -> None:
        self.channel = channel
        self.schema = schema
        self._schema: Schema = schema_of(schema)

    def set(self, key: str, value: Any) -> None:
        self._schema.check_field(key, value)
        self.channel.set(key, value)

    def get(self, key: str, default: Any = None) -> Any:
        if key not in self._schema.fields:
            self._schema.check_field(key, None)  # raises KeyError listing the known keys
        return self.channel.get(key, default)

    def update(self, key: str, fn: Callable[[Any], Any], default: Any = None) -> Any:
        checked = functools.partial(_checked_update, fn, self.schema, key)
        return self.channel.update(key, checked, default)

    def keys(self) -> list[str]:
        return [k for k in self.channel.keys() if k in self._schema.fields]

    def delete(self, key: str) -> bool:
        return self.channel.delete(key)

    def set_all(self, values: T) -> None:
        """Write every field of an attrs instance or TypedDict at once."""
        items: dict[str, Any] = (
            attrs.asdict(values, recurse=False)  # type: ignore[arg-type]
            if attrs.has(type(values))
            else dict(values)  # type: ignore[call-overload]
        )
        for key, value in items.items():  # all checked first: a bad field leaves nothing half-written
            self._schema.check_field(key, value)
        for key, value in items.items():
            self.channel.set(key, value)
