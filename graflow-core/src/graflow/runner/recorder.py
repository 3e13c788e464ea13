"""RunRecorder: the plugin ``graflow run`` adds to its engine to watch the run through lifecycle hooks.

It keeps one :class:`TaskRecord` per task (what the run report lists) and running counts (what the
progress display shows), and tells a listener about each event. Hooks run in the thread that ran
the task (a group's member threads too), so every update holds one lock.

The listener only displays: when it fails to write (``graflow run | head -2`` closed the pipe: an
``OSError`` or ``ValueError``), the recorder switches it off and the run goes on, because an
exception from a lifecycle hook would end the run.
"""

from __future__ import annotations

import threading
import time
import traceback
from typing import Any, Protocol

import attrs

from graflow.hookspecs import hookimpl

# Statuses of a task in the report. "interrupted": started but never finished (Ctrl-C).
SUCCEEDED = "succeeded"
FAILED = "failed"
SKIPPED = "skipped"
NOT_RUN = "not_run"
CACHE_HIT = "cache_hit"
RUNNING = "running"
INTERRUPTED = "interrupted"


def error_info(error: BaseException) -> dict[str, str]:
    """Type, message and traceback (chained causes and notes included) of an exception, as JSON-ready text."""
    cls = type(error)
    name = cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    return {
        "type": name,
        "message": str(error),
        "traceback": "".join(traceback.format_exception(error)),
    }


@attrs.define
class TaskRecord:
    """What happened to one task during the run."""

    task_id: str
    status: str = NOT_RUN
    cycles: int = 0  # iterations started (next_iteration), counting from 1
    attempts: int = 0  # attempts of the last cycle (1 + its retries)
    retries: int = 0  # retries over all cycles
    duration_s: float = 0.0  # time spent executing, all cycles and attempts
    worker: str | None = None
    error: dict[str, str] | None = None
    cache_hits: int = 0
    from_checkpoint: bool = False  # completed before the checkpoint this run resumed from
    started_at: float | None = None  # wall clock (time.time) of the first start
    finished_at: float | None = None
    cycle: int = 0  # the cycle in progress or last seen


class Listener(Protocol):
    """What the progress display implements."""

    def on_event(self, kind: str, record: TaskRecord | None, detail: dict[str, Any]) -> None: ...


class _NoListener:
    def on_event(self, kind: str, record: TaskRecord | None, detail: dict[str, Any]) -> None:
        return None


# Coordination backends whose members run in this process and report their own start
# (graflow_task_started); members of any other backend are marked running when the group submits them.
IN_PROCESS_BACKENDS = frozenset({"direct", "threading"})


class RunRecorder:
    """A plugin object: ``WorkflowEngine(plugins=[recorder])``."""

    def __init__(self, static_tasks: list[str], listener: Listener | None = None) -> None:
        self.lock = threading.Lock()
        self.listener: Listener = listener or _NoListener()
        self.tasks: dict[str, TaskRecord] = {t: TaskRecord(t) for t in static_tasks}
        self.run_id: str | None = None
        self.session_id: str | None = None
        self.started_at: float | None = None  # wall clock
        self.started_mono: float | None = None
        self.finished_at: float | None = None
        self.steps = 0
        self.run_error: BaseException | None = None
        # running counts for the display
        self.running: dict[str, float] = {}  # task id -> monotonic start
        self.done: set[str] = set()
        self.failed: set[str] = set()
        self.retried = 0
        self.display_error: BaseException | None = None  # why the listener was switched off

    # --- state -------------------------------------------------------------------------------------

    @property
    def total(self) -> int:
        return len(self.tasks)

    def mark_completed(self, task_ids: list[str], cycles: dict[str, int]) -> None:
        """Tasks a resumed run's checkpoint had completed already."""
        with self.lock:
            for task_id in task_ids:
                record = self.record_for(task_id)
                record.status = SUCCEEDED
                record.from_checkpoint = True
                record.cycles = record.cycle = cycles.get(task_id, 1)
                self.done.add(task_id)

    def record_for(self, task_id: str) -> TaskRecord:
        record = self.tasks.get(task_id)
        if record is None:  # a dynamic task: it joins the total when it first shows up
            record = self.tasks[task_id] = TaskRecord(task_id)
        return record

    def _begin_cycle(self, record: TaskRecord, cycle: int) -> None:
        if cycle != record.cycle:
            record.cycle = cycle
            record.attempts = 1
        record.cycles = max(record.cycles, cycle)

    def _count_attempts(self, record: TaskRecord, attempts: int) -> None:
        """Retries of a member run elsewhere are not seen as they happen: its outcome's count says them."""
        if attempts > record.attempts:
            record.retries += attempts - record.attempts
            self.retried += attempts - record.attempts
            record.attempts = attempts

    def _notify(self, kind: str, record: TaskRecord | None, detail: dict[str, Any]) -> None:
        """Tell the listener; a listener that cannot write any more is switched off, not fatal."""
        try:
            self.listener.on_event(kind, record, detail)
        except (OSError, ValueError) as exc:  # a closed pipe or stream: the run must not fail for it
            self.listener = _NoListener()
            self.display_error = exc

    def snapshot(self) -> tuple[int, int, int, int, int, list[str]]:
        """``(done, total, running, failed, retried, running task ids)`` for the display."""
        with self.lock:
            return (
                len(self.done),
                len(self.tasks),
                len(self.running),
                len(self.failed),
                self.retried,
                list(self.running),
            )

    # --- hooks -------------------------------------------------------------------------------------

    @hookimpl
    def graflow_run_started(self, run_id: str, session_id: str, start_tasks: list[str]) -> None:
        with self.lock:
            if self.run_id is None:
                self.run_id = run_id
                self.session_id = session_id
                self.started_at = time.time()
                self.started_mono = time.monotonic()
        self._notify("run_started", None, {"session_id": session_id, "start_tasks": start_tasks})

    @hookimpl
    def graflow_run_finished(self, run_id: str, duration_s: float, steps: int, error: BaseException | None) -> None:
        with self.lock:
            self.finished_at = time.time()
            self.steps = steps
            self.run_error = error
        self._notify("run_finished", None, {"duration_s": duration_s, "steps": steps, "error": error})

    @hookimpl
    def graflow_group_started(self, group_id: str, cycle: int, members: list[str], backend: str) -> None:
        """Members of a backend that runs them elsewhere (a process pool, Redis workers) report no
        start here: they count as running from their submission (so Ctrl-C reports them interrupted)."""
        if backend in IN_PROCESS_BACKENDS:
            return
        now, mono = time.time(), time.monotonic()
        with self.lock:
            for task_id in members:
                record = self.record_for(task_id)
                record.status = RUNNING
                if record.started_at is None:
                    record.started_at = now
                self.running[task_id] = mono
                self.done.discard(task_id)
                self.failed.discard(task_id)

    @hookimpl
    def graflow_task_started(self, task_id: str, cycle: int) -> None:
        with self.lock:
            record = self.record_for(task_id)
            self._begin_cycle(record, cycle)
            record.status = RUNNING
            if record.started_at is None:
                record.started_at = time.time()
            self.running[task_id] = time.monotonic()
            self.done.discard(task_id)
            self.failed.discard(task_id)
        self._notify("task_started", record, {"cycle": cycle})

    @hookimpl
    def graflow_task_succeeded(
        self, task_id: str, cycle: int, duration_s: float, worker_id: str | None, attempts: int
    ) -> None:
        with self.lock:
            record = self.record_for(task_id)
            hit = record.status == CACHE_HIT and record.cycle == cycle
            self._begin_cycle(record, cycle)
            self._count_attempts(record, attempts)
            record.status = CACHE_HIT if hit else SUCCEEDED
            record.duration_s += duration_s
            record.finished_at = time.time()
            record.error = None
            if worker_id is not None:
                record.worker = worker_id
            self.running.pop(task_id, None)
            self.failed.discard(task_id)
            self.done.add(task_id)
        self._notify("task_succeeded", record, {"cycle": cycle, "duration_s": duration_s})

    @hookimpl
    def graflow_task_failed(
        self, task_id: str, cycle: int, duration_s: float, error: BaseException, worker_id: str | None, attempts: int
    ) -> None:
        info = error_info(error)  # formatted now, while the traceback is the task's own
        with self.lock:
            record = self.record_for(task_id)
            self._begin_cycle(record, cycle)
            self._count_attempts(record, attempts)
            record.status = FAILED
            record.duration_s += duration_s
            record.finished_at = time.time()
            record.error = info
            if worker_id is not None:
                record.worker = worker_id
            self.running.pop(task_id, None)
            self.done.discard(task_id)
            self.failed.add(task_id)
        self._notify("task_failed", record, {"cycle": cycle, "error": error})

    @hookimpl
    def graflow_task_retrying(
        self, task_id: str, cycle: int, attempt: int, delay_s: float, error: BaseException
    ) -> None:
        with self.lock:
            record = self.record_for(task_id)
            self._begin_cycle(record, cycle)
            record.attempts += 1
            record.retries += 1
            self.retried += 1
        self._notify("task_retrying", record, {"cycle": cycle, "attempt": attempt, "delay_s": delay_s, "error": error})

    @hookimpl
    def graflow_task_cache_hit(self, task_id: str, cycle: int, key: str) -> None:
        with self.lock:
            record = self.record_for(task_id)
            self._begin_cycle(record, cycle)
            record.status = CACHE_HIT
            record.cache_hits += 1
            if record.started_at is None:
                record.started_at = time.time()
            record.finished_at = time.time()
            self.running.pop(task_id, None)
            self.failed.discard(task_id)
            self.done.add(task_id)
        self._notify("task_cache_hit", record, {"cycle": cycle, "key": key})
