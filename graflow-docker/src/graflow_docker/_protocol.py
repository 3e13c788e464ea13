"""The host's half of the container protocol: the request going in, the outcome coming out.

The other half is ``_runner.py``; its docstring lists the files and how graflow objects cross.
What cannot be imported inside the image is shipped by value: code from modules outside
site-packages (the user's own), while graflow objects become the runner's stand-ins, so the image
needs only Python and cloudpickle.
"""

from __future__ import annotations

import importlib
import importlib.util
import io
import json
import os
import pickle
import stat
import sys
import sysconfig
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import cloudpickle

from graflow.channels.views import ChannelOp
from graflow.core.context import TaskExecutionContext
from graflow.core.decorators import task as task_decorator
from graflow.core.task import Executable, TaskWrapper
from graflow.exceptions import RemoteTaskError, SerializationError
from graflow.logs import get_logger

log = get_logger("graflow.docker")

PROTOCOL = 1
RUNNER_PATH = Path(__file__).with_name("_runner.py")
RUNNER_MODULE = "_graflow_runner"
_JSON_OPS = frozenset({"set", "delete", "clear", "increment", "append"})
_NEW_TASK_OPTIONS = frozenset(
    {"inject_context", "handler", "max_cycles", "kwargs"}
    | {"retries", "retry_delay", "backoff", "max_delay", "jitter", "retry_on", "timeout"}
)


def host_versions() -> dict[str, str]:
    """What the image must match: Python major.minor and the exact cloudpickle."""
    return {"python": "{}.{}".format(*sys.version_info[:2]), "cloudpickle": str(cloudpickle.__version__)}


# --- which code travels by value ------------------------------------------------------------------


def _is_graflow(module: str) -> bool:
    return module == "graflow" or module.startswith(("graflow.", "graflow_"))


def _load_runner() -> types.ModuleType:
    """This process's copy of the runner under the container's module name, so that pickling a
    reference to one of its names (``_graflow_runner.TaskRef``) means the same thing on both sides."""
    found = sys.modules.get(RUNNER_MODULE)
    if found is not None:
        return found
    spec = importlib.util.spec_from_file_location(RUNNER_MODULE, RUNNER_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[RUNNER_MODULE] = module
    spec.loader.exec_module(module)
    return module


RUNNER = _load_runner()


def _installed_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    return tuple(os.path.realpath(r) + os.sep for r in roots)


_INSTALLED_ROOTS = _installed_roots()
_LOCAL: dict[str, bool] = {}


def _is_local(module: str) -> bool:
    """A module of the user's own code: a file outside the stdlib and site-packages, not graflow."""
    cached = _LOCAL.get(module)
    if cached is not None:
        return cached
    top = module.partition(".")[0]
    found = sys.modules.get(module)
    file = getattr(found, "__file__", None)
    local = False
    known = top in ("cloudpickle", RUNNER_MODULE) or top in sys.stdlib_module_names
    if file and not _is_graflow(module) and not known:
        real = os.path.realpath(file)
        parts = Path(real).parts
        local = not real.startswith(_INSTALLED_ROOTS) and "site-packages" not in parts
        local = local and "dist-packages" not in parts
    _LOCAL[module] = local
    return local


def _importable(obj: Any, module: str) -> bool:
    """Whether ``module.qualname`` is ``obj`` itself: a ``@task`` function is not (its name holds the
    TaskWrapper), so a task defined in a graflow module still ships by value."""
    target: Any = sys.modules.get(module)
    for part in getattr(obj, "__qualname__", "<").split("."):
        target = getattr(target, part, None)
    return target is obj


@attrs.frozen
class ShippingRules:
    """Overrides of the automatic choice: modules forced by value, or trusted to exist in the image."""

    by_value: tuple[str, ...] = ()
    by_reference: tuple[str, ...] = ()

    def by_value_for(self, module: str) -> bool:
        if _matches(module, self.by_reference):
            return False
        return _matches(module, self.by_value) or _is_local(module)


def _matches(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


@attrs.frozen
class Unshippable:
    """A channel value that cannot be pickled; the container raises with ``reason`` if it reads it."""

    key: str
    reason: str


class _HostPickler(cloudpickle.Pickler):  # type: ignore[misc]
    """cloudpickle, plus: the run's tasks and graflow objects as runner names, the user's modules by value.

    Only ``reducer_override`` is used (no ``persistent_id``): CPython calls it for objects that are
    not plain data, so a list of a million ints pickles at C speed (15x faster than a per-object
    hook). By-value is decided per pickler instead of ``cloudpickle.register_pickle_by_value``, which
    is process-wide and would change how checkpoints and other backends pickle the same code.
    """

    def __init__(self, file: io.BytesIO, rules: ShippingRules, tasks: list[Executable]) -> None:
        super().__init__(file)
        self._rules = rules
        self._tasks = tasks

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, Executable):
            self._tasks.append(obj)
            return (RUNNER.TaskRef, (len(self._tasks) - 1, obj.task_id))
        if isinstance(obj, Unshippable):
            return (RUNNER.Unshippable, (obj.key, obj.reason))
        if isinstance(obj, types.ModuleType):
            name = obj.__name__
            if _is_graflow(name):
                return (RUNNER.GraflowModule, (name,))
            if self._rules.by_value_for(name):
                state = dict(obj.__dict__)
                state.pop("__builtins__", None)
                return cloudpickle.cloudpickle.dynamic_subimport, (name, state)
        elif isinstance(obj, (type, types.FunctionType)):
            module = getattr(obj, "__module__", None)
            if isinstance(module, str) and module != "__main__":
                if _is_graflow(module) and _importable(obj, module):
                    return (RUNNER._graflow_object, (module, obj.__qualname__))
                if self._rules.by_value_for(module):
                    if isinstance(obj, type):
                        return cloudpickle.cloudpickle._dynamic_class_reduce(obj)
                    return self._dynamic_function_reduce(obj)
        return super().reducer_override(obj)


def _dumps(obj: Any, rules: ShippingRules, tasks: list[Executable]) -> bytes:
    buffer = io.BytesIO()
    _HostPickler(buffer, rules, tasks).dump(obj)
    return buffer.getvalue()


def _fault(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


# --- the request ------------------------------------------------------------------------------------


def write_request(
    directory: str,
    *,
    task: TaskWrapper,
    session_id: str,
    cycle: int,
    kwargs: Mapping[str, Any],
    channel: Mapping[str, Any],
    rules: ShippingRules,
    json_output: bool,
) -> list[Executable]:
    """Write ``in`` and the runner into ``directory``; returns the tasks sent as references, in order."""
    header = {"protocol": PROTOCOL, "task_id": task.task_id, **host_versions()}
    header["output"] = "json" if json_output else "pickle"
    request = {
        "task_id": task.task_id,
        "session_id": session_id,
        "cycle": cycle,
        "func": task.func,
        "inject_context": task.inject_context,
        "kwargs": dict(kwargs),
        "channel": dict(channel),
    }
    tasks: list[Executable] = []
    try:
        body = _dumps(request, rules, tasks)
    except Exception:
        tasks.clear()
        body = _dumps(_shippable(request, rules), rules, tasks)
    with open(os.path.join(directory, "in"), "wb") as f:
        f.write(json.dumps(header).encode() + b"\n" + body)
    with open(os.path.join(directory, RUNNER_MODULE + ".py"), "wb") as f:
        f.write(RUNNER_PATH.read_bytes())
    return tasks


def _shippable(request: dict[str, Any], rules: ShippingRules) -> dict[str, Any]:
    """Find what does not pickle: the function or an argument fails the task; a channel value only
    fails the container when it reads it (other tasks may have put anything in the channel)."""
    task_id = request["task_id"]
    scratch: list[Executable] = []
    try:
        _dumps(request["func"], rules, scratch)
    except Exception as exc:
        raise SerializationError(
            f"the function of task {task_id!r} cannot be pickled for its container: {_fault(exc)}"
        ) from exc
    for name, value in request["kwargs"].items():
        try:
            _dumps(value, rules, scratch)
        except Exception as exc:
            raise SerializationError(
                f"argument {name!r} of task {task_id!r} cannot be pickled for its container: {_fault(exc)}. "
                "Create open files, locks and clients inside the task instead."
            ) from exc
    channel = {}
    skipped = []
    for key, value in request["channel"].items():
        try:
            _dumps(value, rules, scratch)
            channel[key] = value
        except Exception as exc:
            channel[key] = Unshippable(key, _fault(exc))
            skipped.append(key)
    if skipped:
        log.warning("docker_channel_keys_skipped", task_id=task_id, keys=skipped)
    return {**request, "channel": channel}


# --- the outcome ------------------------------------------------------------------------------------


@attrs.define
class Outcome:
    """What the container reported. ``problem`` is set when the image cannot run the payload at all."""

    status: str
    result: Any = None
    error: BaseException | None = None
    channel_ops: list[ChannelOp] = attrs.Factory(list)
    next_tasks: list[tuple[Executable | str, bool]] = attrs.Factory(list)
    iterate: tuple[Any, ...] | None = None
    control: tuple[str, str] | None = None
    checkpoint: tuple[dict[str, Any], str | None] | None = None
    problem: dict[str, Any] | None = None
    dropped: str | None = None
    traceback: str = ""


class _HostUnpickler(pickle.Unpickler):
    """Loads the outcome, turning the runner's names back into this run's objects."""

    def __init__(self, file: io.BytesIO, tasks: list[Executable]) -> None:
        super().__init__(file)
        self._names: dict[str, Any] = {
            "TaskRef": lambda index, task_id: tasks[index],
            "_new_task": _new_task,
            "_graflow_object": _graflow_object,
            "GraflowModule": _graflow_module,
            "TaskWrapper": TaskWrapper,
            "task": task_decorator,
            "TaskContext": TaskExecutionContext,
        }

    def find_class(self, module: str, name: str) -> Any:
        if module == RUNNER_MODULE:
            try:
                return self._names[name]
            except KeyError:
                raise pickle.UnpicklingError(f"unexpected runner name from the container: {name!r}") from None
        return super().find_class(module, name)


def _new_task(task_id: str, func: Any, options: dict[str, Any]) -> TaskWrapper:
    unknown = set(options) - _NEW_TASK_OPTIONS
    if unknown:
        raise pickle.UnpicklingError(f"unknown TaskWrapper options from the container: {sorted(unknown)}")
    return TaskWrapper(task_id, func, register=False, **options)


def _graflow_module(name: str) -> Any:
    if not _is_graflow(name):
        raise pickle.UnpicklingError(f"not a graflow module: {name!r}")
    return importlib.import_module(name)


def _graflow_object(module: str, qualname: str) -> Any:
    target: Any = _graflow_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    return target


def read_private(path: str) -> bytes | None:
    """A regular file the container wrote, never following a link it may have planted; ``None`` if
    absent or anything else (a named pipe planted there would block this read forever: the open does
    not wait, and only a regular file is read)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return f.read()


def read_outcome(directory: str, task_id: str, tasks: list[Executable], json_output: bool) -> Outcome | None:
    """The outcome the runner wrote, or ``None`` when it wrote none (killed, crashed, no Python)."""
    raw = read_private(os.path.join(directory, "out"))
    if raw is None:
        return None
    first, _, body = raw.partition(b"\n")
    try:
        head = json.loads(first)
    except ValueError:
        return None
    status = str(head.get("status"))
    described = head.get("error") if isinstance(head.get("error"), dict) else {}
    tb = str(described.get("traceback", ""))
    if status == "environment":
        return Outcome(status, problem=dict(head.get("problem") or {}))
    if status == "load-error":
        return Outcome(status, error=_described(described), traceback=tb)
    try:
        data = _load_json(body) if json_output else _HostUnpickler(io.BytesIO(body), tasks).load()
    except Exception as exc:
        # Also the path for a result of a class the host cannot import: report, do not crash.
        error: BaseException | None = SerializationError(
            f"the outcome of task {task_id!r} cannot be loaded on the host: {_fault(exc)}"
        )
        if status == "error":
            error = _described(described)
        return Outcome("error", error=error, traceback=tb)
    error = None
    if status == "error":
        error = data.get("error") if not json_output else None
        if not isinstance(error, BaseException):
            error = _described(described)
    control = data.get("control")
    checkpoint = data.get("checkpoint")
    return Outcome(
        status,
        result=data.get("result"),
        error=error,
        channel_ops=list(data.get("channel_ops") or ()),
        next_tasks=[(t, bool(goto)) for t, goto in data.get("next_tasks") or ()],
        iterate=tuple(data["iterate"]) if data.get("iterate") is not None else None,
        control=(str(control[0]), str(control[1])) if control else None,
        checkpoint=(dict(checkpoint[0]), checkpoint[1]) if checkpoint else None,
        dropped=head.get("dropped"),
        traceback=tb,
    )


def _described(info: dict[str, Any]) -> BaseException:
    """An exception rebuilt from its description, when the exception object itself did not travel."""
    kind = str(info.get("type", "Exception"))
    message = str(info.get("message", ""))
    if kind == "SerializationError" and info.get("module") == "graflow.exceptions":
        return SerializationError(message)
    return RemoteTaskError(kind, message, str(info.get("traceback", "")))


def _load_json(body: bytes) -> dict[str, Any]:
    """The container's report as plain data, checked: nothing in it is executed (``safe_output``)."""
    data = json.loads(body)
    if not isinstance(data, dict):
        raise ValueError("outcome is not a JSON object")
    for op in data.get("channel_ops") or ():
        if not (isinstance(op, list) and len(op) == 3 and op[0] in _JSON_OPS and isinstance(op[1], str)):
            raise ValueError(f"invalid channel operation {op!r}")
    data["channel_ops"] = [tuple(op) for op in data.get("channel_ops") or ()]
    for item in data.get("next_tasks") or ():
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)):
            raise ValueError(f"invalid next_task request {item!r}")
    control = data.get("control")
    if control is not None and not (
        isinstance(control, list) and len(control) == 2 and control[0] in ("terminate", "cancel")
    ):
        raise ValueError(f"invalid workflow control request {control!r}")
    return data
