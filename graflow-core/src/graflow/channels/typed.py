"""TypedChannel: a channel whose keys and value types come from a TypedDict or an attrs class."""

from __future__ import annotations

import contextlib
import functools
import typing
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import attrs

from graflow.channels.base import Channel

T = TypeVar("T")


def _schema(schema: type[Any]) -> dict[str, Any]:
    if attrs.has(schema):
        # Under ``from __future__ import annotations`` attrs keeps the types as strings, which would
        # check nothing: resolve them first (unresolvable forward references stay unchecked).
        with contextlib.suppress(NameError):
            attrs.resolve_types(schema)
        return {a.name: a.type for a in attrs.fields(schema)}
    if typing.is_typeddict(schema):
        try:
            return typing.get_type_hints(schema)
        except NameError:
            return dict(schema.__annotations__)
    raise TypeError(f"TypedChannel needs a TypedDict or an attrs class, got {schema!r}")


def _matches(value: Any, expected: Any) -> bool:
    if expected is Any or expected is None:
        return True
    if isinstance(expected, str):  # an unresolved forward reference: nothing to check against
        return True
    origin = typing.get_origin(expected)
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        return any(_matches(value, arg) for arg in typing.get_args(expected))
    if origin is typing.Literal:
        return value in typing.get_args(expected)
    if origin is not None:
        return isinstance(value, origin)
    if expected is type(None):
        return value is None
    if expected is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, expected)


def _check(schema_name: str, fields: dict[str, Any], key: str, value: Any) -> None:
    if key not in fields:
        raise KeyError(f"{schema_name} has no key {key!r}; known keys: {', '.join(sorted(fields))}")
    expected = fields[key]
    if not _matches(value, expected):
        raise TypeError(
            f"channel key {key!r} expects {expected!r} (from {schema_name}), got {type(value).__name__}: {value!r}"
        )


def _checked_update(fn: Callable[[Any], Any], schema_name: str, fields: dict[str, Any], key: str, current: Any) -> Any:
    new = fn(current)
    _check(schema_name, fields, key, new)
    return new


class TypedChannel(Generic[T]):
    """Validates every write against the schema ``T``: unknown keys and wrong types raise ``TypeError``.

    Container types are checked at the top level (``list[int]`` checks for a list).
    """

    def __init__(self, channel: Channel, schema: type[T]) -> None:
        self.channel = channel
        self.schema = schema
        self._fields = _schema(schema)

    def _check(self, key: str, value: Any) -> None:
        _check(self.schema.__name__, self._fields, key, value)

    def set(self, key: str, value: Any) -> None:
        self._check(key, value)
        self.channel.set(key, value)

    def get(self, key: str, default: Any = None) -> Any:
        if key not in self._fields:
            self._check(key, None)
        return self.channel.get(key, default)

    def update(self, key: str, fn: Callable[[Any], Any], default: Any = None) -> Any:
        # Built from picklable parts only (no self, which holds the channel): in a process-pool
        # member the update travels back in the channel journal and is replayed by the run.
        checked = functools.partial(_checked_update, fn, self.schema.__name__, self._fields, key)
        return self.channel.update(key, checked, default)

    def keys(self) -> list[str]:
        return [k for k in self.channel.keys() if k in self._fields]

    def delete(self, key: str) -> bool:
        return self.channel.delete(key)

    def set_all(self, values: T) -> None:
        """Write every field of an attrs instance or TypedDict at once."""
        items: dict[str, Any] = (
            attrs.asdict(values, recurse=False)  # type: ignore[arg-type]
            if attrs.has(type(values))
            else dict(values)  # type: ignore[call-overload]
        )
        for key, value in items.items():
            self.set(key, value)
