"""What makes a cache key: a digest of the task's code, its id, and its resolved arguments.

Arguments are hashed from a canonical encoding, not from a pickle: pickles of equal dicts differ
with insertion order, of equal sets with hash seeds (``PYTHONHASHSEED`` differs per process for
strings), and pickles of objects embed whatever their ``__reduce__`` chooses. The encoding writes a
type tag and the value's content for the types listed in :data:`SUPPORTED`; dict items and set
elements are encoded one by one and sorted by digest, so equal containers give equal keys in every
process. Anything else is refused (:class:`~graflow.exceptions.CacheKeyError`) rather than guessed.

The code part digests the function's code object: bytecode, constants, names, argument counts,
flags and exception table, and recursively the code of nested functions, lambdas and
comprehensions. Line numbers, the file name and comments are not part of it, so reformatting or
moving a function keeps its entries; editing its body (a docstring included: it is a constant)
invalidates them. A decorated function is digested layer by layer down its ``__wrapped__`` chain
(what ``functools.wraps`` sets), and functions held in a layer's closure cells (what a decorator
without ``wraps`` keeps, or a helper defined around the function) are digested with it, so editing
the body under a decorator invalidates too. Other values the function reads from globals or
closures, and module-level functions it calls, are not part of it: pass such values as arguments,
or invalidate by hand (README, "Result caching").
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import functools
import pathlib
import sys
import types
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import attrs
from blake3 import blake3

from graflow.cache.base import CacheKey
from graflow.exceptions import CacheKeyError

KEY_VERSION = b"graflow-cache/2"
"""Bumped when the key's recipe changes, so old entries are never read with a new meaning."""

SUPPORTED = (
    "None, bool, int, float, complex, str, bytes, bytearray, tuple, list, dict, set, frozenset, enums, "
    "attrs classes, dataclasses, named tuples, date/time/datetime/timedelta, Decimal, UUID, paths, "
    "numpy arrays and scalars"
)


class Unencodable(Exception):
    """Raised inside the encoder; callers turn it into a CacheKeyError naming task and parameter."""

    def __init__(self, path: str, type_name: str, reason: str = "") -> None:
        super().__init__(path, type_name, reason)
        self.path = path
        self.type_name = type_name
        self.reason = reason


def _qualname(cls: type) -> bytes:
    return f"{cls.__module__}.{cls.__qualname__}".encode()


def _frame(tag: bytes, data: bytes) -> bytes:
    return tag + len(data).to_bytes(8, "big") + data


class _Encoder:
    """Writes the canonical encoding of one value into a BLAKE3 hasher."""

    __slots__ = ("active", "h")

    def __init__(self) -> None:
        self.h = blake3()
        self.active: set[int] = set()  # containers on the current path: a cycle is refused

    def digest_of(self, value: Any, path: str) -> bytes:
        sub = _Encoder()
        sub.active = self.active
        sub.encode(value, path)
        return sub.h.digest()

    def encode(self, value: Any, path: str) -> None:
        h = self.h
        cls = type(value)
        if value is None:
            h.update(b"N")
        elif cls is bool:
            h.update(b"T" if value else b"F")
        elif cls is int:
            h.update(_frame(b"i", str(value).encode()))
        elif cls is float:
            h.update(_frame(b"f", value.hex().encode()))
        elif cls is str:
            h.update(_frame(b"s", value.encode("utf-8", "surrogatepass")))
        elif cls is bytes:
            h.update(_frame(b"b", value))
        elif cls in (tuple, list, dict, set, frozenset):
            self._container(value, cls, path, b"")
        else:
            self._other(value, cls, path)

    def _container(self, value: Any, cls: type, path: str, type_tag: bytes) -> None:
        marker = id(value)
        if marker in self.active:
            raise Unencodable(path, cls.__name__, "it contains itself")
        self.active.add(marker)
        try:
            h = self.h
            if type_tag:
                h.update(_frame(b"~", type_tag))
            if issubclass(cls, dict):
                pairs = sorted(
                    (self.digest_of(k, f"{path}[{k!r}] (key)"), self.digest_of(v, f"{path}[{k!r}]"))
                    for k, v in value.items()
                )
                h.update(b"{" + len(pairs).to_bytes(8, "big"))
                for k_digest, v_digest in pairs:
                    h.update(k_digest + v_digest)
            elif issubclass(cls, (set, frozenset)):
                digests = sorted(self.digest_of(item, f"{path}{{...}}") for item in value)
                h.update((b"Z" if issubclass(cls, frozenset) else b"S") + len(digests).to_bytes(8, "big"))
                for item_digest in digests:
                    h.update(item_digest)
            else:
                h.update((b"(" if issubclass(cls, tuple) else b"[") + len(value).to_bytes(8, "big"))
                for index, item in enumerate(value):
                    self.encode(item, f"{path}[{index}]")
        finally:
            self.active.discard(marker)

    def _fields(self, tag: bytes, value: Any, names: list[str], path: str) -> None:
        self.h.update(_frame(tag, _qualname(type(value))) + len(names).to_bytes(8, "big"))
        for name in names:
            self.h.update(_frame(b"s", name.encode()))
            self.encode(getattr(value, name), f"{path}.{name}")

    def _other(self, value: Any, cls: type, path: str) -> None:
        h = self.h
        if isinstance(value, enum.Enum):
            h.update(_frame(b"E", _qualname(cls)) + _frame(b"s", value.name.encode()))
        elif attrs.has(cls):
            self._fields(b"A", value, [f.name for f in attrs.fields(cls)], path)
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):  # an instance, not the class
            self._fields(b"D", value, [f.name for f in dataclasses.fields(value)], path)
        elif isinstance(value, tuple) and hasattr(cls, "_fields"):  # a named tuple
            self._fields(b"n", value, list(cls._fields), path)
        elif isinstance(value, (datetime.date, datetime.time, datetime.timedelta)):
            # date, datetime (with its UTC offset when aware), time, timedelta: repr is exact
            h.update(_frame(b"t", _qualname(cls)) + _frame(b"s", repr(value).encode()))
        elif isinstance(value, decimal.Decimal):
            h.update(_frame(b"d", str(value).encode()))
        elif isinstance(value, uuid.UUID):
            h.update(_frame(b"u", value.bytes))
        elif isinstance(value, pathlib.PurePath):
            h.update(_frame(b"p", _qualname(cls)) + _frame(b"s", str(value).encode()))
        elif cls is complex:
            h.update(_frame(b"c", f"{value.real.hex()},{value.imag.hex()}".encode()))
        elif cls is bytearray:
            h.update(_frame(b"y", bytes(value)))
        elif value is Ellipsis:  # appears among code constants
            h.update(b"...")
        elif isinstance(value, (tuple, list, dict, set, frozenset)):  # OrderedDict, Counter, ...
            container: type = next(b for b in (dict, list, tuple, frozenset, set) if isinstance(value, b))
            self._container(value, container, path, _qualname(cls))
        elif isinstance(value, (str, int, float, bytes)) and not isinstance(value, bool):
            scalar: Any = next(b for b in (str, int, float, bytes) if isinstance(value, b))
            h.update(_frame(b"~", _qualname(cls)))
            self.encode(scalar(value), path)
        elif _is_numpy(value):
            self._numpy(value, path)
        else:
            raise Unencodable(path, f"{cls.__module__}.{cls.__qualname__}")

    def _numpy(self, value: Any, path: str) -> None:
        np: Any = sys.modules["numpy"]  # present: _is_numpy found the value's type there
        dtype = value.dtype
        if dtype.hasobject:
            raise Unencodable(path, f"numpy array of dtype {dtype}", "object arrays hold arbitrary objects")
        # dtype.str of a structured dtype is only its size ("|V8"): its fields (names, types,
        # offsets) and subarray shapes come from descr. The class tells ndarray subclasses apart.
        layout = dtype.str if dtype.fields is None and dtype.subdtype is None else f"{dtype.str}{dtype.descr!r}"
        shape = ",".join(str(n) for n in getattr(value, "shape", ()))
        tag = b"a" if isinstance(value, np.ndarray) else b"g"
        self.h.update(_frame(tag, f"{layout}|{shape}".encode()) + _frame(b"~", _qualname(type(value))))
        ma: Any = sys.modules.get("numpy.ma")  # a masked array exists only if numpy.ma was imported
        if ma is not None and isinstance(value, ma.MaskedArray):  # its mask and fill value are part of it
            self.h.update(_frame(b"m", np.ascontiguousarray(ma.getmaskarray(value)).tobytes()))
            self.encode(value.fill_value, f"{path}.fill_value")
            value = value.data
        data = np.ascontiguousarray(value) if isinstance(value, np.ndarray) else value
        self.h.update(_frame(b"b", data.tobytes()))


def _is_numpy(value: Any) -> bool:
    numpy = sys.modules.get("numpy")  # an array exists only if numpy was imported: never import it here
    return numpy is not None and isinstance(value, (numpy.ndarray, numpy.generic))


def encode_arguments(task_id: str, kwargs: Mapping[str, Any]) -> bytes:
    """The digest of a task's resolved arguments; :class:`CacheKeyError` names the bad parameter."""
    encoder = _Encoder()
    items = sorted(kwargs.items())
    encoder.h.update(b"{" + len(items).to_bytes(8, "big"))
    for name, value in items:
        encoder.h.update(_frame(b"s", name.encode()))
        try:
            encoder.encode(value, "")
        except Unencodable as exc:
            raise CacheKeyError(task_id, name, exc.path, exc.type_name, exc.reason) from None
    return encoder.h.digest()


def check_encodable(task_id: str, name: str, value: Any) -> None:
    """Fail now (decoration or build time) for an explicit argument or default that can't be hashed."""
    encode_arguments(task_id, {name: value})


# --- code -----------------------------------------------------------------------------------------


def _code_digest(code: types.CodeType) -> bytes:
    h = blake3()
    h.update(_frame(b"c", code.co_code))
    h.update(_frame(b"x", getattr(code, "co_exceptiontable", b"")))
    counts = (code.co_argcount, code.co_posonlyargcount, code.co_kwonlyargcount, code.co_flags)
    h.update(_frame(b"n", ",".join(str(n) for n in counts).encode()))
    for names in (code.co_names, code.co_varnames, code.co_freevars, code.co_cellvars):
        h.update(_frame(b"s", "\0".join(names).encode()))
    h.update(len(code.co_consts).to_bytes(8, "big"))
    encoder = _Encoder()
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            encoder.h.update(_frame(b"C", _code_digest(const)))
        else:
            encoder.encode(const, "")
    h.update(encoder.h.digest())
    return h.digest()


MAX_LAYERS = 100
"""How deep :func:`code_digest` follows ``__wrapped__`` chains and closure cells."""


def code_digest(func: Callable[..., Any]) -> bytes:
    """The digest of what ``func`` runs (see the module docstring for what is included): each layer
    of its ``__wrapped__`` chain, with the functions in each layer's closure cells."""
    return _digest_layers(func, set(), 0)


def _digest_layers(func: Any, seen: set[int], depth: int) -> bytes:
    h = blake3()
    layer: Any = func
    while layer is not None and id(layer) not in seen and depth < MAX_LAYERS:
        seen.add(id(layer))
        depth += 1
        h.update(_frame(b"L", _layer_digest(layer, seen, depth)))
        target = getattr(layer, "__func__", layer)  # a bound method: its function
        for cell in getattr(target, "__closure__", None) or ():
            try:
                held = cell.cell_contents
            except ValueError:  # an empty cell (a name assigned later)
                continue
            if isinstance(held, (types.FunctionType, types.MethodType, functools.partial)) and id(held) not in seen:
                h.update(_frame(b"F", _digest_layers(held, seen, depth)))
        layer = getattr(layer, "__wrapped__", None)
    return h.digest()


def _layer_digest(func: Any, seen: set[int], depth: int) -> bytes:
    """The digest of one callable's own code (not what it wraps; a partial's function included)."""
    if isinstance(func, functools.partial):
        h = blake3(_digest_layers(func.func, seen, depth))
        try:
            h.update(encode_arguments("", {"args": func.args, "keywords": func.keywords}))
        except CacheKeyError as exc:
            raise TypeError(f"functools.partial arguments of {func!r} cannot be hashed: {exc}") from None
        return h.digest()
    target: Any = getattr(func, "__func__", func)  # a bound method: its function
    code = getattr(target, "__code__", None)
    if code is None:
        call = type(target).__call__ if callable(target) else None  # a callable object: its method
        code = getattr(call, "__code__", None)
    if isinstance(code, types.CodeType):
        return _code_digest(code)
    # A builtin or extension callable: no code to read, its name stands for it.
    name = f"{getattr(target, '__module__', '')}.{getattr(target, '__qualname__', repr(target))}"
    return blake3(_frame(b"B", name.encode())).digest()


def cache_key(task_id: str, code: bytes, arguments: bytes, custom: bool) -> CacheKey:
    """Combine the parts; ``custom`` marks ``arguments`` as a ``cache_key=fn`` result."""
    h = blake3(KEY_VERSION)
    h.update(_frame(b"v", f"{sys.version_info[0]}.{sys.version_info[1]}".encode()))
    h.update(_frame(b"t", task_id.encode("utf-8", "surrogatepass")))
    h.update(_frame(b"c", code))
    h.update(_frame(b"K" if custom else b"A", arguments))
    return CacheKey(task_id, h.hexdigest())
