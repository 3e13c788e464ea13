"""Running a task in another process: the request, the signed payload, and the outcome that returns.

Shared by every backend that executes tasks away from the run (the multiprocessing coordinator,
graflow-redis workers, the graflow-docker handler), so they agree on one format:

* the host resolves the task's arguments (results, channel, iteration data) and builds a
  :class:`RemoteRequest`; the far side never needs the graph or the run's results;
* the request travels as a payload: a JSON header (versions, task id) that is checked *before*
  anything is unpickled, then cloudpickle. With a key (``GRAFLOW_SECRET_KEY`` or config
  ``secret_key``) the payload carries an HMAC-SHA256 over both, and a payload that is unsigned or
  tampered is refused without being loaded: unpickling runs code;
* the requests of one submission go through one :class:`RequestEncoder`, which pickles a function
  shared by many members once; the far side keeps recently loaded functions, so (as with a
  function imported by reference) module-level state of a task's function persists between its
  executions in one process;
* the far side runs it with :func:`run_request` and returns a
  :class:`~graflow.coordination.base.MemberOutcome`: result or exception (with the far traceback as
  a note), channel journal, ``next_task``/``next_iteration`` requests.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import io
import json
import os
import platform
import struct
import time
import traceback
import types
from collections.abc import Callable, Mapping
from typing import Any, cast

import attrs
import cloudpickle

from graflow.channels.base import Channel
from graflow.channels.memory import MemoryChannel
from graflow.channels.views import JournalChannel
from graflow.coordination.base import MemberOutcome
from graflow.core.attempt_options import AttemptOptions
from graflow.core.attempts import AttemptObserver, attempts_made
from graflow.core.context import TaskExecutionContext
from graflow.core.execution import execute, execute_once, execute_with_default
from graflow.core.handler import TaskHandler
from graflow.core.retry import with_default
from graflow.core.task import TaskWrapper, find_by_name
from graflow.exceptions import PayloadRejectedError, RemoteTaskError, SerializationError
from graflow.logs import get_logger
from graflow.queue.base import NO_DATA

log = get_logger("graflow.remote")

MAGIC = b"GFL1"
SECRET_KEY_ENV = "GRAFLOW_SECRET_KEY"


@functools.cache
def runtime_versions() -> dict[str, str]:
    """The versions that must match between the sender and the executor of a payload.

    Cached per process (do not mutate the dict): the ``importlib.metadata`` lookup costs ~90 µs, more
    than the rest of a no-op task's round trip through a worker (performance issue, W4).
    """
    from graflow.plugins.manager import core_version

    return {
        "python": ".".join(platform.python_version_tuple()[:2]),
        "cloudpickle": str(cloudpickle.__version__),
        "graflow-core": core_version(),
    }


def secret_key(config: Mapping[str, Any] | None = None) -> bytes | None:
    """The payload signing key from config ``secret_key`` or ``GRAFLOW_SECRET_KEY``, if any."""
    raw = (config or {}).get("secret_key") or os.environ.get(SECRET_KEY_ENV)
    if not raw:
        return None
    return raw if isinstance(raw, bytes) else str(raw).encode()


SECRET_WORDS = ("secret", "password", "token", "credential", "access_key")
"""Config keys containing one of these hold secrets: they are never written where others can read
them (checkpoints, payloads resting in a broker). Give them to the other side another way."""


def is_secret_setting(name: str) -> bool:
    """Whether config key ``name`` names a secret (see :data:`SECRET_WORDS`)."""
    lowered = name.lower()
    return any(word in lowered for word in SECRET_WORDS)


@attrs.define
class RemoteRequest:
    """One member execution, ready to ship. ``channel_backend``/``channel_config`` name a shared
    channel the far side connects to; otherwise ``channel_data`` is a snapshot and writes come back
    as a journal."""

    session_id: str
    task: TaskWrapper
    cycle: int
    kwargs: dict[str, Any]
    data: Any = NO_DATA
    channel_backend: str = "memory"
    channel_config: dict[str, Any] = attrs.Factory(dict)
    channel_data: dict[str, Any] | None = None
    handler: TaskHandler | None = None  # a handler registered on the submitting engine, shipped along
    cache_config: dict[str, Any] | None = None  # a cached task: the store to use there (graflow.cache)
    context: dict[str, str] = attrs.Factory(dict)  # from graflow_remote_context hooks (trace context, ...)
    default_attempts: AttemptOptions | None = None  # the run's default retries (default_max_retries)
    attempt: int = 1  # which attempt a timed attempt's child process runs (ctx.retry_count there)
    max_cycles: int | None = None  # the member's cycle limit in the run (ctx.max_cycles / can_iterate there)

    @property
    def task_id(self) -> str:
        return self.task.task_id

    def __getstate__(self) -> dict[str, Any]:
        return {field.name: getattr(self, field.name) for field in attrs.fields(RemoteRequest)}

    def __setstate__(self, state: Any) -> None:
        _set_with_defaults(self, state)


def _set_with_defaults(obj: Any, state: Any) -> None:
    """Restore a pickled attrs instance, giving fields the sender's version did not have their
    defaults: a payload from an older graflow-core (same version number, fewer fields) still runs."""
    fields = attrs.fields(type(obj))
    if not isinstance(state, dict):  # attrs' tuple form
        state = {field.name: value for field, value in zip(fields, state, strict=False)}
    for field in fields:
        if field.name in state:
            value = state[field.name]
        elif isinstance(field.default, attrs.Factory):  # type: ignore[arg-type]
            value = field.default.factory()
        elif field.default is not attrs.NOTHING:
            value = field.default
        else:
            continue  # a required field: the error names it when it is read
        object.__setattr__(obj, field.name, value)


# --- payloads ------------------------------------------------------------------------------------


SHARED_FUNCTIONS = 256
"""Functions a process keeps loaded from payloads (see :func:`_shared_function`)."""


@functools.lru_cache(maxsize=SHARED_FUNCTIONS)
def _shared_function(blob: bytes) -> Callable[..., Any]:
    """A function pickled once for many requests, loaded once per process: rebuilding a function
    pickled by value (code, globals, closure) is most of what loading a request costs a worker."""
    func: Callable[..., Any] = cloudpickle.loads(blob)
    return func


class _SharingPickler(cloudpickle.Pickler):  # type: ignore[misc]  # cloudpickle has no type hints
    """cloudpickle, except that each function travelling by value is pickled once into ``blobs`` and
    only its bytes are copied into every payload that refers to it."""

    def __init__(self, file: io.BytesIO, blobs: dict[int, tuple[Any, bytes]]) -> None:
        super().__init__(file)
        self._blobs = blobs

    def reducer_override(self, obj: Any) -> Any:
        by_value = type(obj) is types.FunctionType and find_by_name(obj.__module__, obj.__qualname__) is not obj
        if by_value:
            known = self._blobs.get(id(obj))
            if known is None:  # the function is kept with its bytes, so its id cannot be reused
                known = self._blobs[id(obj)] = (obj, cloudpickle.dumps(obj))
            return (_shared_function, (known[1],))
        return super().reducer_override(obj)


def _pickle(obj: Any, blobs: dict[int, tuple[Any, bytes]] | None) -> bytes:
    if blobs is None:
        return cast(bytes, cloudpickle.dumps(obj))
    buffer = io.BytesIO()
    _SharingPickler(buffer, blobs).dump(obj)
    return buffer.getvalue()


def _pack(
    obj: Any, header: dict[str, Any], key: bytes | None, what: str, blobs: dict[int, tuple[Any, bytes]] | None = None
) -> bytes:
    try:
        body = _pickle(obj, blobs)
    except Exception as exc:
        raise SerializationError(
            f"cannot pickle {what} to send it to another process: {type(exc).__name__}: {exc}. "
            "Tasks, their arguments and results must be picklable by cloudpickle (no open files, "
            "sockets, locks or live clients: create those inside the task)."
        ) from exc
    head = json.dumps(header, separators=(",", ":")).encode()
    framed = struct.pack(">I", len(head)) + head + body
    if key is None:
        return MAGIC + b"U" + framed
    return MAGIC + b"S" + hmac.new(key, framed, hashlib.sha256).digest() + framed


def _unpack(payload: bytes, key: bytes | None, check_versions: bool) -> tuple[dict[str, Any], bytes]:
    if payload[:4] != MAGIC:
        raise PayloadRejectedError("not a Graflow payload (bad magic bytes); refusing to load it")
    kind = payload[4:5]
    if kind == b"S":
        digest, framed = payload[5:37], payload[37:]
        if key is None:
            raise PayloadRejectedError(
                "payload is signed but this process has no key; set GRAFLOW_SECRET_KEY like the sender"
            )
        if not hmac.compare_digest(digest, hmac.new(key, framed, hashlib.sha256).digest()):
            raise PayloadRejectedError("payload signature does not match: tampered, or signed with another key")
    elif kind == b"U":
        framed = payload[5:]
        if key is not None:
            raise PayloadRejectedError(
                "payload is unsigned but a secret key is set here; refusing to unpickle it. "
                "Set the same GRAFLOW_SECRET_KEY on the submitting side."
            )
    else:
        raise PayloadRejectedError("unknown payload kind; refusing to load it")
    (length,) = struct.unpack(">I", framed[:4])
    header = json.loads(framed[4 : 4 + length])
    if check_versions:
        mine = runtime_versions()
        theirs = header.get("versions", {})
        diff = {k: (theirs.get(k), v) for k, v in mine.items() if theirs.get(k) != v}
        if diff:
            parts = ", ".join(f"{k}: sender {a} vs here {b}" for k, (a, b) in diff.items())
            raise PayloadRejectedError(
                f"version mismatch for task {header.get('task_id')!r} ({parts}); run the same Python, "
                "cloudpickle and graflow-core versions on both sides"
            )
    return header, framed[4 + length :]


def dumps_request(request: RemoteRequest, key: bytes | None = None) -> bytes:
    """One request as a payload; for many at once, use a :class:`RequestEncoder`."""
    return RequestEncoder(key).dumps(request)


class RequestEncoder:
    """Turns the requests of one submission into payloads, pickling each function they share once.

    The members of a fan-out usually run one function over different inputs; cloudpickle would walk
    that function's code and globals again for every member (~25 µs each when it travels by value,
    W5: ~9 ms for 200 members, while the workers already compete for the CPU). Use one encoder per
    submission, not longer: a function is captured as it is when first encoded.
    """

    def __init__(self, key: bytes | None = None) -> None:
        self.key = key
        self._blobs: dict[int, tuple[Any, bytes]] = {}

    def dumps(self, request: RemoteRequest) -> bytes:
        header = {"task_id": request.task_id, "cycle": request.cycle, "versions": runtime_versions()}
        return _pack(request, header, self.key, f"task {request.task_id!r}", self._blobs)


def loads_request(payload: bytes, key: bytes | None = None, check_versions: bool = True) -> RemoteRequest:
    """Verify, then unpickle. Raises :class:`PayloadRejectedError` without loading a bad payload."""
    _, body = _unpack(payload, key, check_versions)
    request = cloudpickle.loads(body)
    if not isinstance(request, RemoteRequest):
        raise PayloadRejectedError(f"payload holds {type(request).__name__}, not a RemoteRequest")
    return request


def peek_header(payload: bytes) -> dict[str, Any]:
    """The JSON header (task id, versions) without verifying or loading the body."""
    if payload[:4] != MAGIC:
        return {}
    offset = 37 if payload[4:5] == b"S" else 5
    (length,) = struct.unpack(">I", payload[offset : offset + 4])
    header: dict[str, Any] = json.loads(payload[offset + 4 : offset + 4 + length])
    return header


def dumps_outcome(outcome: MemberOutcome, key: bytes | None = None) -> bytes:
    header = {"task_id": outcome.task_id, "versions": runtime_versions()}
    if outcome.error is not None and not _round_trips(outcome.error):
        # Pickles but cannot be rebuilt (an __init__ with required arguments that it does not pass
        # to Exception.__init__): the far side would get an unrelated TypeError instead.
        outcome = attrs.evolve(outcome, error=describe_error(outcome.error))
    try:
        return _pack(outcome, header, key, f"the outcome of task {outcome.task_id!r}")
    except SerializationError as exc:
        # The result or the exception cannot travel: send a description instead of losing it. A
        # result that cannot be pickled will not be picklable next time either: never retried.
        error = outcome.error
        if error is None:
            slim = attrs.evolve(outcome, result=None, error=exc, next_tasks=[], channel_ops=None, retryable=False)
        else:
            slim = attrs.evolve(outcome, result=None, error=describe_error(error), next_tasks=[], channel_ops=None)
        return _pack(slim, header, key, "an error report")


def _round_trips(error: BaseException) -> bool:
    """Whether ``error`` survives pickling and unpickling (only failures pay for this check)."""
    try:
        cloudpickle.loads(cloudpickle.dumps(error))
    except Exception:
        return False
    return True


def describe_error(error: BaseException) -> RemoteTaskError:
    """What can always travel of an exception: its type's name, message and notes (the traceback)."""
    described = RemoteTaskError(type(error).__name__, str(error), "\n".join(getattr(error, "__notes__", [])))
    for note in getattr(error, "__notes__", []):
        described.add_note(note)  # printed with the error, as the original's would have been
    return described


def loads_outcome(payload: bytes, key: bytes | None = None) -> MemberOutcome:
    _, body = _unpack(payload, key, check_versions=False)
    outcome = cloudpickle.loads(body)
    if not isinstance(outcome, MemberOutcome):
        raise PayloadRejectedError(f"payload holds {type(outcome).__name__}, not a MemberOutcome")
    return outcome


# --- the far side -------------------------------------------------------------------------------


class RemoteExecutionContext:
    """The part of an ExecutionContext a task sees when it runs in another process."""

    def __init__(self, session_id: str, channel: Channel, config: Mapping[str, Any]) -> None:
        self.session_id = session_id
        self.channel = channel
        self.config = dict(config)
        self.results: dict[str, Any] = {}
        self.graph = None
        self.max_cycles: int | None = None  # the member's cycle limit, decided by the run that shipped it
        self.cache_config: dict[str, Any] | None = None  # set for a cached task (graflow.cache.runtime)
        self.cache_hit: str | None = None  # the key, when the result came from the cache
        self.cache_secret: bytes | None = None  # the key that verified the payload signs cache entries too
        # The request being run: a timed attempt re-runs it in a child process it can kill (attempt_process).
        self.request: RemoteRequest | None = None
        # Who hears about retries here (graflow.core.attempts): set only when a plugin implements
        # graflow_remote_retrying, else retries are only logged.
        self.attempt_observer: AttemptObserver | None = None

    def set_result(self, task_id: str, value: Any) -> None:
        self.results[task_id] = value

    def get_result(self, task_id: str, default: Any = NO_DATA) -> Any:
        if task_id in self.results:
            return self.results[task_id]
        if default is not NO_DATA:
            return default
        raise KeyError(f"results of other tasks are not available in a remote task (asked for {task_id!r})")

    def get_channel(self) -> Channel:
        return self.channel


def run_request(
    request: RemoteRequest, worker_id: str | None = None, *, once: bool = False, key: bytes | None = None
) -> MemberOutcome:
    """Execute a request here, with the handler the task names (from this process's plugins).

    Retries and timeouts apply here (``outcome.attempts`` counts the attempts); ``once`` runs a
    single attempt without them: what the child process of a timed attempt does. ``key`` is the
    key the payload was verified with: a cached task's entries are signed and checked with it.
    """
    from graflow.plugins.manager import default_host

    started = time.perf_counter()
    outcome = MemberOutcome(request.task_id, request.cycle, worker_id=worker_id)
    journal: JournalChannel | None = None
    on_finished: Any = None
    where: dict[str, Any] = {}
    tctx: TaskExecutionContext | None = None
    options: AttemptOptions | None = None
    try:
        host = default_host()
        # A timed attempt's child (``once``) runs inside an execution the parent already reports.
        on_started = None if once else host.lifecycle["graflow_remote_started"]
        on_finished = None if once else host.lifecycle["graflow_remote_finished"]
        if on_started is not None or on_finished is not None:
            where = {
                "context": request.context,
                "session_id": request.session_id,
                "task_id": request.task_id,
                "cycle": request.cycle,
                "worker_id": worker_id,
            }
            if on_started is not None:
                on_started(**where, handler=request.task.handler)
        if request.channel_data is not None:
            journal = JournalChannel(MemoryChannel("default", request.channel_data))
            channel: Channel = journal
        else:
            factory = host.get("channel backend", request.channel_backend).factory
            channel = factory(request.session_id, request.channel_config)
        rctx = RemoteExecutionContext(request.session_id, channel, request.channel_config)
        rctx.max_cycles = getattr(request, "max_cycles", None)  # absent from an older submitter's request
        rctx.cache_config = request.cache_config
        rctx.cache_secret = key
        tctx = TaskExecutionContext(rctx, request.task_id, request.cycle, request.data)
        tctx._kwargs = request.kwargs
        task = request.task
        handler = request.handler or host.get("handler", task.handler).factory(request.channel_config)
        if once:
            on_attempt = host.lifecycle["graflow_remote_attempt_started"]
            if on_attempt is not None and request.context:
                _attempt_started(on_attempt, request)
            tctx._attempts = request.attempt
            default = request.default_attempts
            options = task.attempts if default is None else with_default(task, default)
            if options is not None:
                tctx._attempt_options = options
            outcome.result = execute_once(handler, task, tctx)
        else:
            rctx.request = request
            on_retrying = host.lifecycle["graflow_remote_retrying"]
            if on_retrying is not None:
                rctx.attempt_observer = _remote_observer(on_retrying, request, worker_id)
            if request.default_attempts is None:
                outcome.result = execute(handler, task, tctx)
            else:
                outcome.result = execute_with_default(request.default_attempts)(handler, task, tctx)
        outcome.next_tasks = [(t, tctx._goto) for t in tctx._next_tasks or ()]
        outcome.iterate = tctx._iterate
        outcome.control = tctx._control
        outcome.checkpoints = tctx._checkpoints
        outcome.cache_hit = rctx.cache_hit
    except BaseException as exc:  # reported to the run, never lost
        exc.add_note(f"Traceback in the process that ran the task (pid {os.getpid()}):\n{traceback.format_exc()}")
        outcome.error = exc
        if once and options is not None:  # decided here, where the exception is real (retry_on)
            outcome.retryable = options.retryable(exc)
    if tctx is not None:
        outcome.attempts = attempts_made(request.task, tctx)
    if journal is not None:
        outcome.channel_ops = journal.ops
    outcome.duration_s = time.perf_counter() - started
    if on_finished is not None:
        try:
            on_finished(**where, duration_s=outcome.duration_s, error=outcome.error, cache_hit=outcome.cache_hit)
        except Exception as hook_error:  # an observer must not change the task's outcome
            log.error(
                "remote_finished_hook_failed",
                session_id=request.session_id,
                task_id=request.task_id,
                cycle=request.cycle,
                error=f"{type(hook_error).__name__}: {hook_error}",
            )
            if outcome.error is not None:
                outcome.error.add_note(f"A graflow_remote_finished hook raised while reporting this: {hook_error!r}")
    return outcome


def _attempt_started(hook: Any, request: RemoteRequest) -> None:
    """``graflow_remote_attempt_started`` in a timed attempt's child; a failing observer is logged, the
    attempt runs."""
    try:
        hook(context=request.context, session_id=request.session_id, task_id=request.task_id,
             cycle=request.cycle, attempt=request.attempt)  # fmt: skip
    except Exception as hook_error:
        log.error(
            "remote_attempt_started_hook_failed",
            session_id=request.session_id,
            task_id=request.task_id,
            error=f"{type(hook_error).__name__}: {hook_error}",
        )


def _remote_observer(hook: Any, request: RemoteRequest, worker_id: str | None) -> AttemptObserver:
    """An attempt observer that reports the retries of a shipped task to ``graflow_remote_retrying``."""
    context = request.context

    def retrying(*, run_id: str, session_id: str, task_id: str, cycle: int, attempt: int, delay_s: float,
                 error: BaseException) -> None:  # fmt: skip
        hook(context=context, session_id=session_id, task_id=task_id, cycle=cycle, worker_id=worker_id,
             attempt=attempt, delay_s=delay_s, error=error)  # fmt: skip

    bound = get_logger("graflow.attempts").bind(session_id=request.session_id, worker_id=worker_id)
    return AttemptObserver(run_id="", session_id=request.session_id, log=bound, hook=retrying)


def attempt_context(request: RemoteRequest) -> dict[str, str]:
    """The ``context`` for the child process of a timed attempt of ``request`` (called in the process
    that executes the request, in the thread of the attempt): ``graflow_remote_context`` asked again,
    here, so plugins carry what is current now (the attempt's trace span) into the child, where
    ``graflow_remote_attempt_started`` receives it."""
    from graflow.plugins.manager import default_host

    hook = default_host().lifecycle["graflow_remote_context"]
    if hook is None:
        return request.context
    merged = dict(request.context)
    for extra in reversed(hook(run_id="", session_id=request.session_id, group_id="", task_id=request.task_id,
                               cycle=request.cycle)):  # fmt: skip
        if extra:
            merged.update(extra)
    return merged


def execute_payload(payload: bytes, key: bytes | None = None) -> bytes:
    """Entry point of a process-pool worker: payload in, outcome payload out. ``key`` is the run's
    signing key (handed over the pool's pipe; default: ``GRAFLOW_SECRET_KEY``)."""
    if key is None:
        key = secret_key()
    request = loads_request(payload, key)
    # A worker id makes the run report the member's outcome to lifecycle hooks (they did not see it
    # run) and names the pool process in run reports.
    return dumps_outcome(run_request(request, f"pool-{os.getpid()}", key=key), key)
