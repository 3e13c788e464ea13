"""Find the workflow a command line names: ``path/to/file.py:name`` or ``dotted.module:name``.

``name`` is a :class:`~graflow.core.workflow.Workflow` or a factory: a callable that takes the
``--param`` values as keyword arguments and returns one. Without ``:name`` the module's only
Workflow is used.

``--param`` typing: when the factory annotates the parameter as ``str``, ``int``, ``float``,
``bool`` or ``Path``, the value is converted to that type; otherwise it is parsed as JSON
(``42``, ``1.5``, ``true``, ``null``, ``[1, 2]``, ``{"a": 1}``) and kept as a string when it is not JSON.

A file is imported under its stem with its directory first on ``sys.path`` (as ``python file.py``
would see its neighbours), so tasks defined at its top level are pickled by reference: a resumed
run, a process pool or a worker with that directory on its path finds the same code. A file that
``import`` cannot reach by its stem (``my-flow.py``, or ``etl.py`` beside an ``etl/`` package, which
``import etl`` would find first) is loaded under a private module name and its functions and classes
are pickled by value (cloudpickle), so other processes need not import it.

``--param`` typing unwraps ``Optional[X]`` / ``X | None`` (the value ``null`` or ``none`` then gives
``None`` unless ``X`` is ``str``); each annotation is resolved on its own, so one that does not
resolve leaves only that parameter untyped.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import json
import os
import sys
import traceback
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs

from graflow.core.workflow import Workflow
from graflow.runner.errors import UsageError


@attrs.frozen
class Target:
    """What ``load_target`` found."""

    workflow: Workflow
    module: ModuleType
    name: str  # the attribute used (workflow or factory)
    params: Mapping[str, Any]


def parse_params(items: Sequence[str]) -> dict[str, str]:
    """``["n=3", "name=x"]`` as raw strings by name; a malformed item raises UsageError."""
    raw: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise UsageError(
                f"bad --param {item!r}: expected NAME=VALUE with NAME a Python identifier, e.g. --param limit=10"
            )
        if key in raw:
            raise UsageError(f"--param {key} is given twice ({raw[key]!r} and {value!r}); give it once")
        raw[key] = value
    return raw


def split_target(spec: str) -> tuple[str, str | None]:
    """``"a/b.py:wf"`` -> ``("a/b.py", "wf")``; ``"pkg.mod"`` -> ``("pkg.mod", None)``."""
    where, sep, name = spec.rpartition(":")
    if not sep or not name or "/" in name or name.endswith(".py"):
        return spec, None
    if not all(part.isidentifier() for part in name.split(".")):
        raise UsageError(f"bad target {spec!r}: {name!r} is not a Python name; use FILE.py:NAME or MODULE:NAME")
    return where, name


def import_target_module(where: str) -> ModuleType:
    """Import a file path (anything with a ``/`` or ending in ``.py``) or a dotted module name."""
    if where.endswith(".py") or "/" in where or os.sep in where:
        return _import_file(Path(where))
    if not all(part.isidentifier() for part in where.split(".")):
        raise UsageError(f"bad target {where!r}: give a file path ending in .py or a dotted module name")
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)  # like `python -m`: modules of the current directory are importable
    try:
        return importlib.import_module(where)
    except ModuleNotFoundError as exc:
        if exc.name is not None and where.startswith(exc.name):
            raise UsageError(
                f"no module named {where!r} (looked in {cwd} and sys.path). Give a file path "
                f"(path/to/{where.split('.')[-1]}.py:NAME) or install the package."
            ) from None
        raise _import_failed(where, exc) from exc
    except Exception as exc:
        raise _import_failed(where, exc) from exc


def _import_file(path: Path) -> ModuleType:
    resolved = path.resolve()
    if not resolved.is_file():
        raise UsageError(f"no such file: {str(path)!r} (current directory: {os.getcwd()})")
    if resolved.suffix != ".py":
        raise UsageError(f"{str(path)!r} is not a Python file (.py)")
    name = resolved.stem
    existing = sys.modules.get(name)
    if existing is not None:
        if _file_of(existing) == resolved:
            return existing
        if name.isidentifier():
            raise UsageError(
                f"{str(path)!r} would be imported as module {name!r}, but a module of that name is already "
                f"loaded from {getattr(existing, '__file__', None) or '(built in)'}; rename the file"
            )
    folder = str(resolved.parent)
    if not name.isidentifier():
        return _load_by_path(path, resolved)  # my-flow.py: no import statement can name it
    if folder not in sys.path:
        sys.path.insert(0, folder)
    try:
        spec = importlib.util.find_spec(name)
    except Exception:  # a broken package of that name: what the import would hit too
        spec = None
    if spec is None or spec.origin is None or Path(spec.origin).resolve() != resolved:
        # `import etl` finds something else first (etl/ beside etl.py, an installed module).
        return _load_by_path(path, resolved)
    try:
        module = importlib.import_module(name)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise _import_failed(str(path), exc) from exc
    if _file_of(module) != resolved:
        raise UsageError(
            f"{str(path)!r}: `import {name}` loaded {getattr(module, '__file__', None) or '(built in)'} instead "
            f"of this file; rename the file"
        )
    return module


def _file_of(module: ModuleType) -> Path | None:
    file = getattr(module, "__file__", None)
    return Path(file).resolve() if file else None


def _load_by_path(path: Path, resolved: Path) -> ModuleType:
    """Load a file that ``import`` cannot reach by its name (``my-flow.py``; ``etl.py`` beside an
    ``etl/`` package) under a private module name, and have its functions and classes pickled by
    value: another process (a process pool, a worker, a resumed run) cannot import it by name."""
    import cloudpickle

    stem = "".join(c if c.isalnum() or c == "_" else "_" for c in resolved.stem)
    digest = hashlib.sha1(str(resolved).encode(), usedforsecurity=False).hexdigest()[:8]
    name = f"_graflow_file_{stem}_{digest}"
    existing = sys.modules.get(name)
    if existing is not None:
        return existing
    spec = importlib.util.spec_from_file_location(name, resolved)
    if spec is None or spec.loader is None:
        raise UsageError(f"cannot load {str(path)!r} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    cloudpickle.register_pickle_by_value(module)
    folder = str(resolved.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)  # its neighbours import as they would under `python file.py`
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        cloudpickle.unregister_pickle_by_value(module)
        sys.modules.pop(name, None)
        raise _import_failed(str(path), exc) from exc
    return module


def _import_failed(where: str, exc: BaseException) -> UsageError:
    text = "".join(traceback.format_exception(exc)).rstrip()
    return UsageError(f"importing {where!r} failed: {type(exc).__name__}: {exc}\n\n{text}")


def _is_factory(obj: Any) -> bool:
    if isinstance(obj, Workflow) or not callable(obj) or isinstance(obj, type):
        return False
    try:
        returns = inspect.signature(obj).return_annotation
    except (TypeError, ValueError):
        return False
    if returns is Workflow:
        return True
    return isinstance(returns, str) and returns.rsplit(".", 1)[-1] == "Workflow"


def found_in(module: ModuleType) -> tuple[list[str], list[str]]:
    """Names of the module's Workflow objects and of its factories (callables annotated ``-> Workflow``)."""
    workflows, factories = [], []
    seen: set[int] = set()
    for name, value in sorted(vars(module).items()):
        if name.startswith("_"):
            continue
        if isinstance(value, Workflow):
            if id(value) not in seen:
                seen.add(id(value))
                workflows.append(name)
        elif _is_factory(value) and getattr(value, "__module__", None) == module.__name__:
            factories.append(name)
    return workflows, factories


def _listing(module: ModuleType) -> str:
    workflows, factories = found_in(module)
    parts = [f"workflows: {', '.join(workflows) or '(none)'}"]
    if factories:
        parts.append(f"factories: {', '.join(factories)}")
    return "; ".join(parts)


def load_target(spec: str, raw_params: Mapping[str, str] | None = None) -> Target:
    """The workflow ``spec`` names, built with ``raw_params`` when it is a factory."""
    raw = dict(raw_params or {})
    where, name = split_target(spec)
    module = import_target_module(where)
    if name is None:
        workflows, factories = found_in(module)
        if len(workflows) == 1:
            name = workflows[0]
        elif not workflows and len(factories) == 1:
            name = factories[0]
        else:
            reason = "several" if workflows else "no"
            raise UsageError(
                f"{where!r} defines {reason} workflows; name one as {where}:NAME. Found {_listing(module)}"
            )
    obj: Any = module
    for part in name.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise UsageError(f"{where!r} has no {name!r}. Found {_listing(module)}")
    if isinstance(obj, Workflow):
        if raw:
            raise UsageError(
                f"{name!r} is a Workflow object, which takes no --param ({', '.join(raw)}); "
                "make it a factory (def build(...) -> Workflow) to pass parameters"
            )
        return Target(obj, module, name, {})
    if not callable(obj):
        raise UsageError(f"{name!r} is a {type(obj).__name__}, not a Workflow or a factory. Found {_listing(module)}")
    params = convert_params(obj, name, raw)
    try:
        built = obj(**params)
    except Exception as exc:
        text = "".join(traceback.format_exception(exc)).rstrip()
        raise UsageError(f"factory {name}() raised {type(exc).__name__}: {exc}\n\n{text}") from exc
    if not isinstance(built, Workflow):
        raise UsageError(f"factory {name}() returned {type(built).__name__}, not a Workflow")
    return Target(built, module, name, params)


def convert_params(factory: Callable[..., Any], name: str, raw: Mapping[str, str]) -> dict[str, Any]:
    """Check ``raw`` against the factory's signature and convert each value (module docstring)."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return {key: json_or_str(value) for key, value in raw.items()}
    accepted = {
        p.name: p
        for p in signature.parameters.values()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())
    listing = ", ".join(accepted) or "(none)"
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in accepted and not var_kw:
            raise UsageError(f"factory {name}() has no parameter {key!r}; its parameters: {listing}")
        annotation = _annotation(factory, accepted[key]) if key in accepted else None
        out[key] = _convert(value, annotation, key, name)
    missing = [p.name for p in accepted.values() if p.default is inspect.Parameter.empty and p.name not in out]
    if missing:
        flags = " ".join(f"--param {m}=..." for m in missing)
        raise UsageError(f"factory {name}() needs {flags} (its parameters: {listing})")
    return out


def _annotation(factory: Callable[..., Any], parameter: inspect.Parameter) -> Any:
    """The parameter's annotation, resolved on its own (``None`` when it does not resolve)."""
    annotation = parameter.annotation
    if annotation is inspect.Parameter.empty:
        return None
    if isinstance(annotation, str):  # `from __future__ import annotations`, or a quoted name
        namespace = getattr(inspect.unwrap(factory), "__globals__", {})
        try:
            annotation = eval(annotation, dict(namespace))  # as typing.get_type_hints does, one at a time
        except Exception:
            return None
    return annotation


def _optional_of(annotation: Any) -> Any:
    """``X`` for ``Optional[X]`` / ``X | None``; ``None`` for any other annotation."""
    if typing.get_origin(annotation) not in (typing.Union, types.UnionType):
        return None
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if len(args) == 1 and len(args) < len(typing.get_args(annotation)):
        return args[0]
    return None


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _convert(value: str, annotation: Any, key: str, factory: str) -> Any:
    inner = _optional_of(annotation)
    if inner is not None:
        if inner is not str and value.strip().lower() in ("null", "none"):
            return None
        annotation = inner
    if annotation is str:
        return value
    if annotation is Path:
        return Path(value)
    try:
        if annotation is bool:
            lowered = value.strip().lower()
            if lowered not in _TRUE | _FALSE:
                raise ValueError(value)
            return lowered in _TRUE
        if annotation is int:
            return int(value)
        if annotation is float:
            return float(value)
    except ValueError:
        raise UsageError(
            f"--param {key}={value!r}: factory {factory}() declares {key}: {annotation.__name__}, "
            f"and {value!r} is not one"
        ) from None
    return json_or_str(value)


def json_or_str(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value
