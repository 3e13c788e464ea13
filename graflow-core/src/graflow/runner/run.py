"""One ``graflow run``: prepare (load the target, build the engine, create or resume the context),
execute, and write the report whatever happens (success, failure, Ctrl-C).

Bad input surfaces in :func:`prepare_run` as :class:`UsageError` before any task runs; the run's own
failures are an outcome (:class:`RunResult`), never an exception, except a second Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from graflow.core.context import ExecutionContext
from graflow.core.engine import WorkflowEngine
from graflow.core.graph import TaskGraph
from graflow.core.task import ParallelGroup, TaskWrapper
from graflow.exceptions import CheckpointError, GraflowError, UnknownNameError, WorkflowCancelledError
from graflow.runner.errors import UsageError
from graflow.runner.recorder import Listener, RunRecorder
from graflow.runner.report import build_report, write_report
from graflow.runner.target import Target, json_or_str, load_target, parse_params

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


@attrs.frozen
class RunOptions:
    """What the command line asked for."""

    target: str
    params: tuple[str, ...] = ()
    resume: str | None = None
    queue_backend: str = "memory"
    channel_backend: str = "memory"
    config: tuple[str, ...] = ()
    max_steps: int | None = None
    report: str | None = None


@attrs.frozen
class RunResult:
    """How the run ended; ``report`` is what was written to ``report_path`` (when one was asked for).

    ``report_error`` says why the report could not be written (the run's outcome stands regardless).
    """

    status: str  # succeeded | failed | cancelled | interrupted
    exit_code: int
    error: BaseException | None
    report: dict[str, Any]
    report_path: str | None
    report_error: str | None = None


@attrs.define
class PreparedRun:
    """A run ready to execute: its engine carries the recorder; ``execute`` runs it once."""

    options: RunOptions
    target: Target
    engine: WorkflowEngine
    context: ExecutionContext
    recorder: RunRecorder

    @property
    def workflow_name(self) -> str:
        return self.target.workflow.name

    def execute(self) -> RunResult:
        started = time.time()
        error: BaseException | None = None
        status = "interrupted"  # unless the run gets to say otherwise (Ctrl-C between two statements)
        try:
            try:
                self.engine.execute(self.context)
                status = "succeeded"
            except KeyboardInterrupt as exc:
                error, status = exc, "interrupted"
            except WorkflowCancelledError as exc:
                error, status = exc, "cancelled"
            except BaseException as exc:  # a task's SystemExit ends the run as a failure too
                error, status = exc, "failed"
        finally:
            with _sigint_ignored():  # a second Ctrl-C must not cut the report in half
                report = build_report(
                    recorder=self.recorder,
                    context=self.context,
                    workflow=self.workflow_name,
                    status=status,
                    error=error,
                    started_at=self.recorder.started_at or started,
                    finished_at=time.time(),
                    options=self._report_options(),
                )
                report_error = None
                if self.options.report:
                    try:
                        write_report(self.options.report, report)
                    except OSError as exc:  # checked before the run; a disk can still fill up meanwhile
                        report_error = f"{type(exc).__name__}: {exc}"
        code = {"succeeded": EXIT_OK, "interrupted": EXIT_INTERRUPTED}.get(status, EXIT_FAILED)
        written = self.options.report if report_error is None else None
        return RunResult(status, code, error, report, written, report_error)

    def _report_options(self) -> dict[str, Any]:
        return {
            "target": self.options.target,
            "params": dict(self.target.params),
            "queue_backend": self.context.queue_backend,
            "channel_backend": self.context.channel_backend,
            "resume": self.options.resume,
        }


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def parse_config(items: tuple[str, ...]) -> dict[str, Any]:
    """``--config key=value`` entries (values parsed like untyped ``--param`` values)."""
    config: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"bad --config {item!r}: expected KEY=VALUE, e.g. --config redis_url=redis://host:6379/0")
        config[key.strip()] = json_or_str(value)
    return config


def prepare_run(options: RunOptions, listener: Listener | None = None) -> PreparedRun:
    """Load the target and build the run; every problem with the input raises UsageError here,
    before any task runs: the target, ``--param``, ``--config`` values, backend and handler names,
    an unreachable Redis, a ``--report`` path that cannot be written."""
    if options.max_steps is not None and options.max_steps < 1:
        raise UsageError(f"--max-steps must be >= 1, got {options.max_steps}")
    raw_params = parse_params(options.params)
    config = parse_config(options.config)
    if options.report is not None:
        check_report_path(options.report)
    target = load_target(options.target, raw_params)
    workflow = target.workflow
    static = [t for t, node in workflow.graph.nodes.items() if isinstance(node, TaskWrapper)]
    recorder = RunRecorder(static, listener)
    try:
        engine = WorkflowEngine(plugins=[recorder], config=config)
    except (ValueError, TypeError, GraflowError) as exc:
        raise _config_error(exc, config) from exc
    try:
        if options.resume is not None:
            context = _resume(options, engine, config, recorder, workflow.graph)
        else:
            check_names(engine, workflow.graph)
            check_backends_reachable(
                engine, config, (options.queue_backend, options.channel_backend, *_group_backends(workflow.graph))
            )
            context = workflow.create_context(
                max_steps=options.max_steps,
                engine=engine,
                queue_backend=options.queue_backend,
                channel_backend=options.channel_backend,
                config=config,
            )
    except UnknownNameError as exc:
        option = {"queue backend": "--queue-backend", "channel backend": "--channel-backend"}.get(exc.kind, "")
        raise UsageError(f"{option + ': ' if option else ''}{exc}") from exc
    except UsageError:
        raise
    except (ValueError, TypeError, GraflowError) as exc:
        raise _config_error(exc, config) from exc
    except (ConnectionError, TimeoutError) as exc:
        raise UsageError(f"cannot reach a backend of the run: {type(exc).__name__}: {exc}") from exc
    return PreparedRun(options, target, engine, context, recorder)


def _config_error(exc: BaseException, config: Mapping[str, Any]) -> UsageError:
    given = ", ".join(f"{k}={v!r}" for k, v in config.items()) or "(none)"
    return UsageError(
        f"the run's configuration was refused: {type(exc).__name__}: {exc}\n"
        f"Fix the --config value it names (given: {given})."
    )


def check_report_path(path: str) -> None:
    """Fail before the run when ``--report PATH`` cannot be written (a directory, no permission)."""
    target = Path(path)
    if target.is_dir():
        raise UsageError(f"--report {path}: is a directory; give a file name, e.g. --report {target / 'run.json'}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".probe", dir=target.parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UsageError(f"--report {path}: cannot write there ({type(exc).__name__}: {exc})") from exc


def _group_backends(graph: TaskGraph) -> list[str]:
    return sorted({str(node.backend) for node in graph.nodes.values() if isinstance(node, ParallelGroup)})


def check_names(engine: WorkflowEngine, graph: TaskGraph) -> None:
    """Every handler and group coordination backend the static graph names is installed."""
    for node_id, node in graph.nodes.items():
        try:
            if isinstance(node, TaskWrapper):
                engine.host.get("handler", node.handler)
            elif isinstance(node, ParallelGroup):
                engine.host.get("coordination backend", str(node.backend))
        except UnknownNameError as exc:
            what = "task" if isinstance(node, TaskWrapper) else "group"
            raise UsageError(f"{what} {node_id!r}: {exc}") from exc


REDIS_PING_TIMEOUT_S = 3.0


def check_backends_reachable(engine: WorkflowEngine, config: Mapping[str, Any], backends: Sequence[str]) -> None:
    """A Redis the run needs answers a ping within a few seconds, or the run does not start.

    Backends wait out a Redis restart during a run (``reconnect_timeout``, 300 s); a server that
    is not there at the start is a wrong URL or a server not started, which waiting cannot fix.
    """
    if "redis" not in backends or config.get("redis_client") is not None:
        return
    try:
        import redis

        from graflow_redis.connection import redis_url
    except ImportError:
        return  # the backend's own lookup says it is not installed
    url = redis_url(config)
    try:
        client = redis.Redis.from_url(
            url, socket_connect_timeout=REDIS_PING_TIMEOUT_S, socket_timeout=REDIS_PING_TIMEOUT_S
        )
        try:
            client.ping()
        finally:
            client.close()
    except (redis.exceptions.RedisError, OSError, ValueError) as exc:
        raise UsageError(
            f"Redis at {_redacted(url)} does not answer ({type(exc).__name__}: {exc}); start it, or give "
            f"its address with --config redis_url=redis://HOST:PORT/DB (or REDIS_URL)"
        ) from exc


def _redacted(url: str) -> str:
    """``url`` without its password (it may be printed)."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _resume(
    options: RunOptions,
    engine: WorkflowEngine,
    config: Mapping[str, Any],
    recorder: RunRecorder,
    target_graph: TaskGraph,
) -> ExecutionContext:
    from graflow.checkpoint.manager import CheckpointManager

    assert options.resume is not None
    try:
        context, _ = CheckpointManager.resume_from_checkpoint(options.resume, config=config, engine=engine)
    except CheckpointError as exc:
        raise UsageError(f"--resume {options.resume}: {exc}") from exc
    asked = (options.queue_backend, options.channel_backend)
    if asked != ("memory", "memory") and asked != (context.queue_backend, context.channel_backend):
        raise UsageError(
            f"--resume keeps the checkpoint's backends (queue {context.queue_backend!r}, channel "
            f"{context.channel_backend!r}); drop --queue-backend/--channel-backend"
        )
    # The run continues the checkpoint's graph, whatever TARGET builds: a different workflow is refused.
    saved = set(context.graph.nodes) - context.graph.dynamic
    if saved != set(target_graph.nodes):
        raise UsageError(
            f"--resume {options.resume}: the checkpoint was written by another workflow than "
            f"{options.target!r} (its tasks: {_few(saved)}; {options.target}'s: {_few(set(target_graph.nodes))}); "
            "give the target that wrote the checkpoint"
        )
    if options.max_steps is not None:
        context.max_steps = options.max_steps
    with recorder.lock:
        recorder.tasks.clear()  # the checkpoint's graph, dynamic tasks included
    for task_id, node in context.graph.nodes.items():
        if isinstance(node, TaskWrapper):
            recorder.record_for(task_id)
    recorder.mark_completed(sorted(context.completed), dict(context.cycle_counts))
    check_names(engine, context.graph)
    return context


def _few(ids: set[str]) -> str:
    shown = sorted(ids)
    return ", ".join(shown[:8]) + (f" (+{len(shown) - 8} more)" if len(shown) > 8 else "")
