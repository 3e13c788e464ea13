"""The program that runs one Graflow task inside a container.

Graflow is not installed in the image (issue #6: the image needs only Python and cloudpickle), so the
host copies this file next to the payload as ``_graflow_runner.py`` and imports it there under that
name (``BOOT_CODE``). It imports nothing from graflow and keeps to Python 3.7 syntax, so an older
image still gets far enough to report its version instead of a SyntaxError. It is one file on
purpose (copied into the container whole), hence longer than our ~400-line habit.

Files in DIR: ``in`` (host: a JSON header line, then the cloudpickled request), ``out`` (here: a
JSON header line, then the body as cloudpickle or JSON), ``stdout``/``stderr`` (here: the task's own
output, forwarded by the host).

Graflow objects cross as calls to this module's names, which both sides can resolve: the host loads
this same file as the module ``_graflow_runner`` to pickle them, and maps the names back to its own
objects when it unpickles the outcome (``find_class``). So loading never needs graflow here, and
plain data pickles at C speed (no per-object hook):

* ``TaskRef(index, task_id)``: a task or group of the host's run; the host's very object there;
* ``_graflow_object(module, qualname)``: a graflow class or function (``TaskWrapper``, ``task``, a
  type in an annotation), a stand-in here; ``GraflowModule(name)``: a graflow module;
* ``_new_task(task_id, func, options)``: a ``TaskWrapper`` built here, a real one on the host;
* ``Unshippable(key, reason)``: a channel value the host could not pickle.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
import traceback
from collections.abc import Callable
from typing import Any

PROTOCOL = 1
MODULE_NAME = "_graflow_runner"
BOOT_CODE = (
    "import sys; sys.path.insert(0, sys.argv[1]); import _graflow_runner; sys.exit(_graflow_runner.run(sys.argv[1]))"
)
NAMESPACE_SEPARATOR = "::"
_MISSING: Any = object()


# --- stand-ins for graflow objects -------------------------------------------------------------------


class TaskRef:
    """A task or group of the host's run: pass it to ``context.next_task``."""

    def __init__(self, index: int, task_id: str) -> None:
        self.index = index
        self.task_id = task_id

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(
            f"task {self.task_id!r} cannot be called inside a Docker container: only its id travels "
            "here. Schedule it with context.next_task(...) instead."
        )

    def __reduce__(self) -> Any:
        return (TaskRef, (self.index, self.task_id))

    def __repr__(self) -> str:
        return f"TaskRef({self.task_id!r})"


class TaskWrapper:
    """Stand-in for ``graflow.TaskWrapper`` inside the container: ``next_task(TaskWrapper("id", fn))``
    works, and the host builds the real task from it."""

    def __init__(
        self,
        task_id: str,
        func: Callable[..., Any],
        *,
        inject_context: bool = False,
        handler: str | None = None,
        max_cycles: int | None = None,
        kwargs: dict[str, Any] | None = None,
        register: bool = True,
        **attempt_options: Any,
    ) -> None:
        if not callable(func):
            raise TypeError(f"task {task_id!r}: {func!r} is not callable")
        unknown = set(attempt_options) - ATTEMPT_OPTIONS
        if unknown:
            raise TypeError(f"task {task_id!r}: unknown options {sorted(unknown)}")
        self.task_id = task_id
        self.func = func
        self.options = {
            "inject_context": inject_context,
            "handler": handler,
            "max_cycles": max_cycles,
            "kwargs": dict(kwargs or {}),
            **attempt_options,  # retries/timeout: validated by the real TaskWrapper on the host
        }

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)

    def __reduce__(self) -> Any:
        return (_new_task, (self.task_id, self.func, self.options))

    def __repr__(self) -> str:
        return f"TaskWrapper({self.task_id!r})"


ATTEMPT_OPTIONS = frozenset({"retries", "retry_delay", "backoff", "max_delay", "jitter", "retry_on", "timeout"})


def _new_task(task_id: str, func: Callable[..., Any], options: dict[str, Any]) -> TaskWrapper:
    return TaskWrapper(task_id, func, **options)


def task(
    func_or_id: Any = None,
    *,
    id: str | None = None,
    inject_context: bool = False,
    handler: str | None = None,
    max_cycles: int | None = None,
    **attempt_options: Any,
) -> Any:
    """Stand-in for ``graflow.task`` inside the container."""
    if callable(func_or_id):
        return TaskWrapper(func_or_id.__name__, func_or_id)
    task_id = func_or_id if isinstance(func_or_id, str) else id

    def decorate(func: Callable[..., Any]) -> TaskWrapper:
        return TaskWrapper(
            task_id or func.__name__,
            func,
            inject_context=inject_context,
            handler=handler,
            max_cycles=max_cycles,
            **attempt_options,
        )

    return decorate


class GraflowRef:
    """A graflow object the container does not have (for example a type in an annotation)."""

    def __init__(self, module: str, qualname: str) -> None:
        self._module = module
        self._qualname = qualname

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(
            f"{self._module}.{self._qualname} is not available inside a Docker container: the image "
            "has Python and cloudpickle, not graflow. Use the context the task receives "
            "(inject_context=True) for channels and next_task."
        )

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return GraflowRef(self._module, self._qualname + "." + name)

    def __reduce__(self) -> Any:
        return (_graflow_object, (self._module, self._qualname))

    def __repr__(self) -> str:
        return f"<graflow object {self._module}.{self._qualname}, not available in the container>"


class GraflowModule:
    """A graflow module referenced by the task (``import graflow``): offers the stand-ins."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return _graflow_object(self._name, name)

    def __reduce__(self) -> Any:
        return (GraflowModule, (self._name,))


class Unshippable:
    """A channel value the host could not pickle; reading it raises with the reason."""

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        self.reason = reason

    def __reduce__(self) -> Any:
        return (Unshippable, (self.key, self.reason))


_STAND_INS = {
    "TaskWrapper": TaskWrapper,
    "task": task,
}


def _graflow_object(module: str, qualname: str) -> Any:
    if qualname == "TaskExecutionContext":
        return TaskContext
    found = _STAND_INS.get(qualname)
    return found if found is not None else GraflowRef(module, qualname)


# --- the channel and the context a task sees ---------------------------------------------------------


class JournalChannel:
    """The host's channel as a snapshot; writes are journaled and replayed on the host after the task.

    The journal uses graflow's format, ``(operation, key, argument)``. ``increment``/``append``/
    ``update`` travel as operations, so parallel containers incrementing one counter add up.
    """

    def __init__(self, data: dict[str, Any], ops: list[Any], json_only: bool, namespace: str = "") -> None:
        self._data = data
        self._ops = ops
        self._json_only = json_only
        self._prefix = namespace + NAMESPACE_SEPARATOR if namespace else ""
        self.name = namespace or "default"

    def _value(self, key: str, value: Any) -> Any:
        if isinstance(value, Unshippable):
            raise RuntimeError(f"channel key {value.key!r} could not be shipped into the container: {value.reason}")
        return value

    def get(self, key: str, default: Any = None) -> Any:
        full = self._prefix + key
        if full not in self._data:
            return default
        return self._value(full, self._data[full])

    def set(self, key: str, value: Any) -> None:
        full = self._prefix + key
        self._data[full] = value
        self._ops.append(("set", full, value))

    def delete(self, key: str) -> bool:
        full = self._prefix + key
        self._ops.append(("delete", full, None))
        return self._data.pop(full, _MISSING) is not _MISSING

    def keys(self) -> list[str]:
        n = len(self._prefix)
        return [k[n:] for k in self._data if k.startswith(self._prefix)]

    def clear(self) -> None:
        if self._prefix:
            for key in self.keys():
                self.delete(key)
            return
        self._ops.append(("clear", "", None))
        self._data.clear()

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and (self._prefix + key) in self._data

    def update(self, key: str, fn: Callable[[Any], Any], default: Any = None) -> Any:
        full = self._prefix + key
        value = fn(self._value(full, self._data.get(full, default)))
        self._data[full] = value
        # A function cannot travel as JSON: the new value does (not atomic on the host then).
        self._ops.append(("set", full, value) if self._json_only else ("update", full, (fn, default)))
        return value

    def increment(self, key: str, amount: Any = 1) -> Any:
        full = self._prefix + key
        value = self._value(full, self._data.get(full, 0)) + amount
        self._data[full] = value
        self._ops.append(("increment", full, amount))
        return value

    def append(self, key: str, value: Any) -> list[Any]:
        full = self._prefix + key
        new = [*self._value(full, self._data.get(full, [])), value]
        self._data[full] = new
        self._ops.append(("append", full, value))
        return new

    def items(self) -> dict[str, Any]:
        return {key: self.get(key) for key in self.keys()}

    def __repr__(self) -> str:
        return f"JournalChannel({self.name!r}, keys={len(self.keys())})"


class TaskContext:
    """What ``inject_context=True`` tasks receive inside the container.

    The same calls as graflow's ``TaskExecutionContext``; their effects are applied on the host when
    the task returns (a task that raises changes nothing but the channel, as on the host).
    """

    def __init__(self, request: dict[str, Any], json_only: bool) -> None:
        self.task_id = request["task_id"]
        self.session_id = request["session_id"]
        self.cycle_count = request["cycle"]
        self._json_only = json_only
        self._data = request["channel"]
        self.ops: list[Any] = []
        self.next_tasks: list[Any] = []
        self.iterate: Any = None
        self.control: Any = None
        self.checkpoint_request: Any = None

    def get_channel(self, namespace: str | None = None) -> JournalChannel:
        return JournalChannel(self._data, self.ops, self._json_only, namespace or "")

    def get_typed_channel(self, schema: Any, namespace: str | None = None) -> JournalChannel:
        """The channel, unvalidated: the validation lives in graflow, which the container lacks."""
        return self.get_channel(namespace)

    def get_field_channel(self, schema: Any, namespace: str | None = None) -> JournalChannel:
        """The channel, unvalidated (as :meth:`get_typed_channel`)."""
        return self.get_channel(namespace)

    def get_result(self, task_id: str, default: Any = _MISSING) -> Any:
        if default is not _MISSING:
            return default
        raise KeyError(
            f"results of other tasks are not available inside a Docker container (asked for {task_id!r});"
            " take them as parameters of the task instead"
        )

    @property
    def graph(self) -> Any:
        raise RuntimeError("context.graph is not available inside a Docker container")

    def next_task(self, task: Any, goto: bool = False) -> None:
        if isinstance(task, (TaskRef, str)) or (isinstance(task, TaskWrapper) and not self._json_only):
            self.next_tasks.append((task, bool(goto)))
            return
        if isinstance(task, TaskWrapper):
            raise TypeError("with safe_output=True, next_task takes the id of a task of the workflow, not a new task")
        raise TypeError(
            f"next_task expects a task of the workflow, its id, or TaskWrapper(task_id, func); got {task!r}"
        )

    def next_iteration(self, data: Any = _MISSING) -> None:
        self.iterate = () if data is _MISSING else (data,)

    def terminate_workflow(self, message: str = "") -> None:
        self.control = ("terminate", message)

    def cancel_workflow(self, message: str = "") -> None:
        self.control = ("cancel", message)

    def checkpoint(self, metadata: Any = None, deferred: bool = True, path: str | None = None) -> None:
        if not deferred:
            raise RuntimeError("checkpoint(deferred=False) is not available inside a Docker container")
        self.checkpoint_request = (dict(metadata or {}), path)

    def __repr__(self) -> str:
        return f"TaskExecutionContext(task_id={self.task_id!r}, cycle={self.cycle_count}, in a container)"


# --- the run -----------------------------------------------------------------------------------------


def _describe(exc: BaseException) -> dict[str, str]:
    try:
        message = str(exc)
    except Exception:  # a broken __str__ must not hide the failure
        message = f"<unprintable {type(exc).__name__}>"
    return {
        "type": type(exc).__qualname__,
        "module": type(exc).__module__,
        "message": message,
        "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
    }


def _environment_problem(header: dict[str, Any]) -> dict[str, Any] | None:
    mine = "{}.{}".format(*sys.version_info[:2])
    if header.get("python") != mine:
        return {"component": "python", "host": header.get("python"), "image": mine}
    try:
        import cloudpickle
    except ImportError:
        return {"component": "cloudpickle", "host": header.get("cloudpickle"), "image": None}
    version = getattr(cloudpickle, "__version__", "?")
    if header.get("cloudpickle") != version:
        return {"component": "cloudpickle", "host": header.get("cloudpickle"), "image": version}
    return None


def _write(directory: str, head: dict[str, Any], body: bytes = b"") -> None:
    head["protocol"] = PROTOCOL
    tmp = os.path.join(directory, "out.tmp")
    with open(tmp, "wb") as f:
        f.write(json.dumps(head).encode() + b"\n" + body)
    os.replace(tmp, os.path.join(directory, "out"))  # the host never reads a half-written outcome


def _redirect_output(directory: str) -> None:
    """The task's prints (and its subprocesses') go to files the host forwards, not into the protocol."""
    sys.stdout.flush()
    sys.stderr.flush()
    for fd, name in ((1, "stdout"), (2, "stderr")):
        target = os.open(os.path.join(directory, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        os.dup2(target, fd)
        os.close(target)


def _outcome_body(ctx: TaskContext, result: Any, error: BaseException | None, json_only: bool) -> bytes:
    outcome = {
        "result": result,
        "error": error,
        "channel_ops": ctx.ops,
        "next_tasks": ctx.next_tasks,
        "iterate": ctx.iterate,
        "control": ctx.control,
        "checkpoint": ctx.checkpoint_request,
    }
    if not json_only:
        import cloudpickle

        return bytes(cloudpickle.dumps(outcome))
    outcome["error"] = None
    outcome["next_tasks"] = [(t.task_id if isinstance(t, TaskRef) else t, goto) for t, goto in ctx.next_tasks]
    return json.dumps(outcome).encode()


def _partial_outcome(
    ctx: TaskContext, error: BaseException | None, json_only: bool, head: dict[str, Any], cause: BaseException
) -> bytes:
    """Something cannot travel back: say what in ``head``, and keep what can travel."""
    what = "the exception raised by" if error is not None else "the result of"
    try:
        data = _outcome_body(ctx, None, None, json_only)
    except BaseException as exc:
        cause = exc
        ctx.ops, ctx.next_tasks = [], []
        data = _outcome_body(ctx, None, None, json_only)
        what = "the channel writes or next_task requests of"
    fault = _describe(cause)
    message = f"{what} task {ctx.task_id!r} cannot be sent back to the host: {fault['type']}: {fault['message']}"
    if error is None:
        fault.update(type="SerializationError", module="graflow.exceptions", message=message)
        head.update(status="error", error=fault)
    else:
        head["dropped"] = message
    return data


def run(directory: str) -> int:
    with open(os.path.join(directory, "in"), "rb") as f:
        header = json.loads(f.readline().decode())
        body = f.read()
    problem = _environment_problem(header)
    if problem is not None:
        _write(directory, {"status": "environment", "problem": problem})
        return 0
    json_only = header.get("output") == "json"
    _redirect_output(directory)
    try:
        request = pickle.loads(body)
    except BaseException as exc:
        _write(directory, {"status": "load-error", "error": _describe(exc)})
        return 0
    ctx = TaskContext(request, json_only)
    func = request["func"]
    result: Any = None
    error: BaseException | None = None
    head: dict[str, Any] = {"status": "ok", "body": "json" if json_only else "pickle"}
    try:
        args = (ctx,) if request["inject_context"] else ()
        result = func(*args, **request["kwargs"])
    except BaseException as exc:  # SystemExit and KeyboardInterrupt too: the host decides
        error = exc
        head = {"status": "error", "body": head["body"], "error": _describe(exc)}
        if not json_only and not _round_trips(exc):
            # Pickles but cannot be rebuilt (an __init__ with required arguments): the host would fail
            # to load the whole outcome, channel writes included. It rebuilds it from head["error"].
            error = None
    try:
        data = _outcome_body(ctx, result, error, json_only)
    except BaseException as exc:
        data = _partial_outcome(ctx, error, json_only, head, exc)
    _write(directory, head, data)
    # The task returned: end now, as a direct task would, without waiting for non-daemon threads it
    # left running (the interpreter's exit would join them, and the host would wait or time out).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _round_trips(error: BaseException) -> bool:
    import cloudpickle

    try:
        pickle.loads(cloudpickle.dumps(error))
    except BaseException:
        return False
    return True
