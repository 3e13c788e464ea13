"""Schemas for typed channels: reading a TypedDict or attrs class once, and checking values against it.

Checks follow the annotations as far as they can be checked at run time: unions, ``Optional``,
``Literal``, nested TypedDicts and attrs classes, and the elements of ``list``/``set``/``tuple``/
``dict`` (and their ``collections.abc`` forms). Unresolvable forward references and type variables
check nothing. A float field accepts an int, as type checkers do.
"""

from __future__ import annotations

import collections.abc
import contextlib
import sys
import types
import typing
from collections.abc import Mapping
from typing import Any

import attrs

_MISSING = object()


class Schema:
    """What a TypedDict or attrs class declares: its fields' types and which fields are required."""

    __slots__ = ("cls", "fields", "is_attrs", "name", "required")

    def __init__(self, cls: type[Any]) -> None:
        self.cls = cls
        self.name: str = getattr(cls, "__name__", repr(cls))
        if attrs.has(cls):
            self.is_attrs = True
            try:  # attrs keeps string annotations (``from __future__ import annotations``) until resolved
                attrs.resolve_types(cls)
                self.fields: dict[str, Any] = {a.name: a.type for a in attrs.fields(cls)}
            except NameError:  # one unresolvable reference: resolve the others one by one
                self.fields = _resolve_each(cls, {a.name: a.type for a in attrs.fields(cls)})
            self.required: frozenset[str] = frozenset(
                a.name for a in attrs.fields(cls) if a.default is attrs.NOTHING and a.init
            )
        elif is_typeddict(cls):
            self.is_attrs = False
            try:
                extras = typing.get_type_hints(cls, include_extras=True)
            except NameError:  # one unresolvable reference: resolve the others one by one
                extras = _resolve_each(cls, dict(cls.__annotations__))
            self.fields = {k: _unqualified(hint) for k, hint in extras.items()}
            # Python computes __required_keys__ before string annotations (``from __future__ import
            # annotations``) are resolved, so it misses NotRequired/Required there: read them here.
            computed = getattr(cls, "__required_keys__", frozenset(self.fields))
            self.required = frozenset(
                k
                for k, hint in extras.items()
                if _qualifier(hint) == "Required" or (_qualifier(hint) != "NotRequired" and k in computed)
            )
        else:
            raise TypeError(
                f"a typed channel needs a TypedDict or an attrs class, got {cls!r}: "
                "declare the message as `class M(TypedDict): ...` or with `@attrs.define`"
            )

    def check_field(self, key: str, value: Any) -> None:
        """``value`` for the field ``key``; raises ``KeyError`` (unknown field) or ``TypeError``."""
        if key not in self.fields:
            raise KeyError(f"{self.name} has no key {key!r}; known keys: {', '.join(sorted(self.fields))}")
        problem = mismatch(value, self.fields[key], "value")
        if problem is not None:
            raise TypeError(f"channel key {key!r}: {problem} (from {self.name})")

    def message(self, value: Any, where: str) -> Any:
        """``value`` as a valid message of this schema (an attrs mapping is built into an instance).

        Raises ``TypeError`` saying what is wrong, ``where`` naming the message (e.g. "key 'user'").
        """
        if self.is_attrs and isinstance(value, Mapping) and not isinstance(value, self.cls):
            try:
                value = self.cls(**value)
            except TypeError as exc:
                raise TypeError(f"{where}: cannot build a {self.name} from {dict(value)!r}: {exc}") from None
        problem = mismatch(value, self.cls, "")
        if problem is not None:
            raise TypeError(f"{where} must be a valid {self.name}: {problem}")
        return value


def is_typeddict(cls: Any) -> bool:
    """A TypedDict class, from ``typing`` or ``typing_extensions`` (pydantic needs the latter before
    Python 3.12, and ``typing.is_typeddict`` does not recognise it)."""
    return (
        isinstance(cls, type)
        and issubclass(cls, dict)
        and hasattr(cls, "__required_keys__")
        and hasattr(cls, "__total__")
    )


def _qualifier(hint: Any) -> str | None:
    """``"Required"``/``"NotRequired"``/``"ReadOnly"`` for a TypedDict key's qualifier, whichever module made it."""
    origin = typing.get_origin(hint)
    name = getattr(origin, "_name", None) or getattr(origin, "__name__", None)
    return name if name in ("Required", "NotRequired", "ReadOnly") else None


def _unqualified(hint: Any) -> Any:
    while _qualifier(hint) is not None:
        hint = typing.get_args(hint)[0]
    return hint


def _resolve_each(cls: type[Any], annotations: dict[str, Any]) -> dict[str, Any]:
    """Each string annotation evaluated on its own in the class's module, as ``typing.get_type_hints``
    would: one that names something unreachable (a local class) stays a string and checks nothing,
    the others are still checked."""
    module = sys.modules.get(getattr(cls, "__module__", ""), None)
    namespace = dict(vars(module)) if module is not None else {}
    resolved: dict[str, Any] = {}
    for name, hint in annotations.items():
        if isinstance(hint, typing.ForwardRef):  # how a TypedDict keeps a string annotation
            hint = hint.__forward_arg__
        if isinstance(hint, str):
            with contextlib.suppress(Exception):  # unresolvable: left a string, unchecked
                hint = eval(hint, namespace, {})  # what get_type_hints does with a string annotation
        resolved[name] = hint
    return resolved


_SCHEMAS: dict[type[Any], Schema] = {}


def schema_of(cls: type[Any]) -> Schema:
    """The :class:`Schema` of ``cls``, read once per class."""
    found = _SCHEMAS.get(cls)
    if found is None:
        found = _SCHEMAS[cls] = Schema(cls)
    return found


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__}: {text if len(text) <= 80 else text[:77] + '...'}"


def _at(path: str, inner: str) -> str:
    return f"{path}.{inner}" if path and inner else path or inner


def mismatch(value: Any, expected: Any, path: str) -> str | None:
    """Why ``value`` is not an ``expected`` (``None`` when it is); ``path`` names the value in messages."""
    if expected is Any or isinstance(expected, str | typing.ForwardRef | typing.TypeVar):
        return None
    if expected is None or expected is type(None):
        return None if value is None else f"{path or 'value'} expects None, got {_describe(value)}"
    origin = typing.get_origin(expected)
    args = typing.get_args(expected)
    if origin is typing.Annotated:
        return mismatch(value, args[0], path)
    if origin is typing.Union or origin is types.UnionType:
        if any(mismatch(value, arg, path) is None for arg in args):
            return None
        return f"{path or 'value'} expects {_name(expected)}, got {_describe(value)}"
    if origin is typing.Literal:
        if value in args:
            return None
        return f"{path or 'value'} expects one of {list(args)!r}, got {_describe(value)}"
    if isinstance(expected, type) and (is_typeddict(expected) or attrs.has(expected)):
        return _mismatch_record(value, schema_of(expected), path)
    if origin is not None:
        return _mismatch_generic(value, origin, args, expected, path)
    supertype = getattr(expected, "__supertype__", None)  # typing.NewType
    if supertype is not None:
        return mismatch(value, supertype, path)
    if not isinstance(expected, type):
        return None  # a construct we cannot check at run time
    if expected is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    else:
        ok = isinstance(value, expected)
    return None if ok else f"{path or 'value'} expects {_name(expected)}, got {_describe(value)}"


def _mismatch_record(value: Any, schema: Schema, path: str) -> str | None:
    if schema.is_attrs:
        if not isinstance(value, schema.cls):
            return f"{path or 'value'} expects a {schema.name} instance, got {_describe(value)}"
        items = {name: getattr(value, name, _MISSING) for name in schema.fields}
    else:
        if not isinstance(value, Mapping):
            return f"{path or 'value'} expects a {schema.name} (a dict), got {_describe(value)}"
        unknown = sorted(str(k) for k in value if k not in schema.fields)
        if unknown:
            return (
                f"{path or 'value'} has unknown key(s) {', '.join(map(repr, unknown))}; "
                f"{schema.name} declares {', '.join(sorted(schema.fields))}"
            )
        missing = sorted(schema.required.difference(value))
        if missing:
            return f"{path or 'value'} is missing required key(s) {', '.join(map(repr, missing))} of {schema.name}"
        items = dict(value)
    for name, item in items.items():
        if item is _MISSING:
            continue
        problem = mismatch(item, schema.fields[name], _at(path, name))
        if problem is not None:
            return problem
    return None


def _mismatch_generic(value: Any, origin: Any, args: tuple[Any, ...], expected: Any, path: str) -> str | None:
    if not isinstance(origin, type):
        return None
    if not isinstance(value, origin) or (origin in (collections.abc.Sequence, list, tuple) and isinstance(value, str)):
        return f"{path or 'value'} expects {_name(expected)}, got {_describe(value)}"
    if not args:
        return None
    if isinstance(value, Mapping):
        key_type, value_type = (*args, Any, Any)[:2]
        for k, v in value.items():
            problem = mismatch(k, key_type, f"{path or 'value'}[{k!r}] (key)") or mismatch(
                v, value_type, f"{path or 'value'}[{k!r}]"
            )
            if problem is not None:
                return problem
        return None
    if isinstance(value, tuple) and origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
        if len(value) != len(args):
            return f"{path or 'value'} expects {_name(expected)} ({len(args)} items), got {_describe(value)}"
        pairs = list(zip(args, value, strict=True))
    elif isinstance(value, collections.abc.Iterable) and not isinstance(value, collections.abc.Iterator):
        pairs = [(args[0], item) for item in value]
    else:
        return None
    for index, (item_type, item) in enumerate(pairs):
        problem = mismatch(item, item_type, f"{path or 'value'}[{index}]")
        if problem is not None:
            return problem
    return None


def _name(expected: Any) -> str:
    if isinstance(expected, type) and not typing.get_args(expected):
        return expected.__name__
    return repr(expected).replace("typing.", "")
