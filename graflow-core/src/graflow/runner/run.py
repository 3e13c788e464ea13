"""One ``graflow run``: prepare (load the target, build the engine, create or resume the context),
execute, and write the report whatever happens (success, failure, Ctrl-C).

Bad input surfaces in :func:`prepare_run` as :class:`UsageError` before any task runs; the run's own
failures are an outcome (:class:`RunResult`), never an exception, except a second Ctrl-C.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

import attrs

from graflow.core.context import ExecutionContext
from graflow.core.engine import WorkflowEngine
from graflow.core.task import TaskWrapper
from graflow.exceptions import CheckpointError, UnknownNameError, WorkflowCancelledError
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
    """How the run ended; ``report`` is what was written to ``report_path`` (when one was asked for)."""

    status: str  # succeeded | failed | cancelled | interrupted
    exit_code: int
    error: BaseException | None
    report: dict[str, Any]
    report_path: str | None


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
                if self.options.report:
                    write_report(self.options.report, report)
        code = {"succeeded": EXIT_OK, "interrupted": EXIT_INTERRUPTED}.get(status, EXIT_FAILED)
        return RunResult(status, code, error, report, self.options.report)

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
    """Load the target and build the run; every problem with the input raises UsageError here."""
    if options.max_steps is not None and options.max_steps < 1:
        raise UsageError(f"--max-steps must be >= 1, got {options.max_steps}")
    raw_params = parse_params(options.params)
    config = parse_config(options.config)
    target = load_target(options.target, raw_params)
    workflow = target.workflow
    static = [t for t, node in workflow.graph.nodes.items() if isinstance(node, TaskWrapper)]
    recorder = RunRecorder(static, listener)
    engine = WorkflowEngine(plugins=[recorder], config=config)
    try:
        if options.resume is not None:
            context = _resume(options, engine, config, recorder)
        else:
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
    return PreparedRun(options, target, engine, context, recorder)


def _resume(
    options: RunOptions, engine: WorkflowEngine, config: Mapping[str, Any], recorder: RunRecorder
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
    if options.max_steps is not None:
        context.max_steps = options.max_steps
    for task_id, node in context.graph.nodes.items():
        if isinstance(node, TaskWrapper):
            recorder.record_for(task_id)
    recorder.mark_completed(sorted(context.completed), dict(context.cycle_counts))
    return context
