"""TaskWorker: a process that takes task executions from a shared queue and runs them (spec section 1).

Threads of one worker:

* ``max_concurrent_tasks`` slot threads. A free slot reads one task from the queue itself, so a
  worker takes a task only when a slot is free to start it, two slots that finish together do not
  wait for each other, and no thread hand-off sits between two tasks of a slot (performance issue,
  W5: makespan within 5% of ideal; a hand-off costs ~0.3 ms on a small VM). Slots block in the
  queue's read, never in a sleep;
* a reporter sends the outcomes of slots that found their next task at once (so the report does not
  delay that task), and those that could not be sent otherwise (the queue failed, the worker stops);
  what finished meanwhile goes in the same round trip (W4);
* a heartbeat thread tells others this worker is alive and what it runs, reclaims the work of
  workers whose heartbeats stopped, and gives back deliveries this worker owns without knowing it
  (their reply was lost with a connection) once they are ``worker_timeout`` old;
* the thread that called :meth:`TaskWorker.start` waits for :meth:`TaskWorker.stop` on a socket pair,
  so ``stop`` takes no lock and is safe in a signal handler, then shuts down.

Slot threads are daemons, so a task still running after the graceful timeout does not keep the
process alive; its delivery is released for another worker instead.
"""

from __future__ import annotations

import contextlib
import functools
import os
import queue as stdqueue
import select
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from types import FrameType
from typing import Any

from graflow.coordination.base import MemberOutcome
from graflow.core import remote
from graflow.exceptions import BackendAccessError
from graflow.logs import get_logger
from graflow.plugins.manager import PluginHost, default_host
from graflow.worker.execution import Backoff, dumps_outcome, execute_item
from graflow.worker.protocol import WorkItem, WorkSource

log = get_logger("graflow.worker")

_SENTINEL: Any = None


class TaskWorker:
    """Runs tasks published to ``queue`` by parallel groups, ``max_concurrent_tasks`` at a time.

    ``start()`` blocks until ``stop()`` (or SIGTERM/SIGINT when started from the main thread): then it
    stops taking tasks, lets running ones finish for up to ``graceful_shutdown_timeout`` seconds,
    gives back the rest for other workers, and returns. A second stop skips the wait.

    ``secret_key`` (default: ``GRAFLOW_SECRET_KEY``) verifies payloads and signs outcomes; it must match
    the submitting side's. Metrics: ``tasks_processed``, ``tasks_succeeded``, ``tasks_failed``,
    ``total_execution_time`` (seconds), ``tasks_released``, ``tasks_running``; :meth:`info` is what the
    heartbeat publishes.

    The ``graflow_worker_*`` hooks of the installed plugins (and of ``plugins``, extra plugin objects)
    observe the worker; ``options`` is what ``graflow_worker_started`` receives (the parsed command
    line for ``graflow worker``).
    """

    def __init__(
        self,
        queue: WorkSource,
        worker_id: str | None = None,
        max_concurrent_tasks: int = 4,
        graceful_shutdown_timeout: float = 30.0,
        *,
        secret_key: str | bytes | None = None,
        block_s: float = 1.0,
        heartbeat_interval: float | None = None,
        plugins: Iterable[object] | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(queue, WorkSource):
            raise TypeError(
                "TaskWorker needs a queue that other processes can read (a WorkSource such as "
                f"graflow_redis.RedisTaskQueue), got {type(queue).__name__}"
            )
        if max_concurrent_tasks < 1:
            raise ValueError(f"max_concurrent_tasks must be >= 1, got {max_concurrent_tasks}")
        if graceful_shutdown_timeout < 0:
            raise ValueError(f"graceful_shutdown_timeout must be >= 0, got {graceful_shutdown_timeout}")
        self.queue = queue
        self.worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}"
        # One consumer name per worker instance: two processes started with the same --worker-id
        # (replicas of one manifest) must not share deliveries or heartbeats.
        self.consumer = f"{self.worker_id}@{uuid.uuid4().hex[:8]}"
        self.max_concurrent_tasks = max_concurrent_tasks
        self.graceful_shutdown_timeout = float(graceful_shutdown_timeout)
        self.block_s = block_s
        self.heartbeat_interval = heartbeat_interval or max(0.05, float(queue.worker_timeout) / 3)
        self._key = remote.secret_key({"secret_key": secret_key} if secret_key else None)
        self._log = log.bind(worker_id=self.worker_id)
        self._cond = threading.Condition()
        self._free = max_concurrent_tasks  # slots not executing a task
        self._fetching = 0  # slots reading from the queue
        self._registered = False  # the first heartbeat is in: slots may take work
        self._held: dict[str, WorkItem] = {}  # fetched and not yet reported
        self._done: stdqueue.SimpleQueue[tuple[WorkItem, MemberOutcome] | None] = stdqueue.SimpleQueue()
        self._stopping = threading.Event()
        self._forced = threading.Event()
        self._beat_now = threading.Event()
        self._beat_exit = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_w.setblocking(False)
        self._started = False
        self.started_at: float | None = None
        self.tasks_processed = 0
        self.tasks_succeeded = 0
        self.tasks_failed = 0
        self.tasks_released = 0
        self.total_execution_time = 0.0
        self.fatal_error: BaseException | None = None
        """Why the worker stopped by itself (the queue refused its credentials), if it did."""
        plugin_list = list(plugins or ())
        hooks = (PluginHost(plugin_list) if plugin_list else default_host()).lifecycle
        self.options: dict[str, Any] = dict(options or {})
        self._on_started = hooks["graflow_worker_started"]
        self._on_task_done = hooks["graflow_worker_task_done"]
        self._on_stopped = hooks["graflow_worker_stopped"]

    # --- public ------------------------------------------------------------------------------------

    @property
    def is_running(self) -> bool:
        return self._started and not self._stopping.is_set()

    @property
    def tasks_running(self) -> int:
        """Tasks executing now (slots busy with a delivery)."""
        return self.max_concurrent_tasks - self._free

    def stop(self) -> None:
        """Stop taking tasks; a second call also skips waiting for running ones.

        Takes no lock (one byte on a socket pair), so it is safe in a signal handler and any thread.
        """
        self._poke(b"s")

    def info(self) -> dict[str, Any]:
        """What the heartbeat publishes: who this worker is, what it runs, its counters."""
        with self._cond:
            running = sorted(item.task_id for item in self._held.values())
        return {
            "worker_id": self.worker_id,
            "consumer": self.consumer,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "queue": getattr(self.queue, "queue_name", None),
            "state": "stopping" if self._stopping.is_set() else "running",
            "started_at": self.started_at,
            "heartbeat_at": time.time(),
            "max_concurrent_tasks": self.max_concurrent_tasks,
            "running": running[:100],
            "running_count": len(running),
            "tasks_processed": self.tasks_processed,
            "tasks_succeeded": self.tasks_succeeded,
            "tasks_failed": self.tasks_failed,
            "tasks_released": self.tasks_released,
            "total_execution_time": round(self.total_execution_time, 6),
        }

    def start(self) -> None:
        """Run until stopped (blocking). Installs SIGTERM/SIGINT handlers when on the main thread."""
        if self._started:
            raise RuntimeError(f"worker {self.worker_id!r} was already started; create a new TaskWorker")
        self._started = True
        self.started_at = time.time()
        if self._on_started is not None:  # a bad plugin setting stops the worker before it takes work
            try:
                self._on_started(worker_id=self.worker_id, worker=self, queue=self.queue, options=self.options)
            except BaseException:
                self._stopped_hook()  # plugins started before the one that raised release what they opened
                raise
        previous = self._install_signal_handlers()
        slots = [
            threading.Thread(target=self._slot, name=f"graflow-slot-{i}", daemon=True)
            for i in range(self.max_concurrent_tasks)
        ]
        reporter = threading.Thread(target=self._report, name="graflow-reporter", daemon=True)
        beater = threading.Thread(target=self._beat, name="graflow-heartbeat", daemon=True)
        try:
            for thread in (*slots, reporter, beater):
                thread.start()
            self._log.info(
                "worker_started",
                consumer=self.consumer,
                queue=getattr(self.queue, "queue_name", None),
                max_concurrent_tasks=self.max_concurrent_tasks,
            )
            self._wake_r.recv(64)  # until stop()
        finally:
            self._shutdown(reporter, beater)
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    # --- slots -------------------------------------------------------------------------------------

    def _slot(self) -> None:
        finished: tuple[WorkItem, MemberOutcome] | None = None
        while (item := self._take(finished)) is not None:
            outcome, duration, handler = execute_item(item, self._key, self.worker_id, self._log)
            finished = (item, outcome)
            if self._on_task_done is not None:
                self._task_done(item, outcome, duration, handler)
            with self._cond:
                self.tasks_processed += 1
                if outcome.error is None:
                    self.tasks_succeeded += 1
                else:
                    self.tasks_failed += 1
                self.total_execution_time += duration

    def _task_done(self, item: WorkItem, outcome: MemberOutcome, duration: float, handler: str | None) -> None:
        try:
            self._on_task_done(
                worker_id=self.worker_id,
                worker=self,
                task_id=item.task_id,
                cycle=item.cycle,
                handler=handler,
                duration_s=duration,
                error=outcome.error,
            )
        except Exception as exc:  # an observer must not take a slot down
            self._log.warning("worker_task_done_hook_failed", error=f"{type(exc).__name__}: {exc}")

    def _take(self, finished: tuple[WorkItem, MemberOutcome] | None) -> WorkItem | None:
        """Free the slot, report ``finished``, and fetch the slot's next task.

        Every idle slot reads for itself (one task at a time), so two slots that finish together do
        not wait for each other. The next task is looked for first, without the report: reporting
        runs a script on the server that also wakes the submitter, ~0.25 ms that would otherwise sit
        between two tasks of this slot (W5); when a task is there, the reporter thread sends the
        report while it runs. When none is, the report travels with the blocking read instead.
        Returns ``None`` when the worker stops. Whichever way ``finished`` goes, it is on its way
        before the fetch counter drops, which is what shutdown waits for.
        """
        cond = self._cond
        with cond:
            if finished is not None:
                self._free += 1
                if self._stopping.is_set():
                    self._done.put(finished)
                    self._poke(b"t")  # shutdown is waiting for running tasks
                    return None
            while not self._registered and not self._stopping.is_set():
                cond.wait()
            if self._stopping.is_set():
                if finished is not None:
                    self._done.put(finished)
                return None
            self._fetching += 1
        backoff = Backoff()
        try:
            while not self._stopping.is_set():
                try:
                    items = self.queue.fetch(self.consumer, 1, 0.0) if finished is not None else []
                    if not items:
                        done = [(finished[0], dumps_outcome(finished[1], self._key))] if finished is not None else []
                        items = self.queue.fetch(self.consumer, 1, self.block_s, done)
                        if finished is not None:
                            with cond:
                                self._held.pop(finished[0].item_id, None)
                            finished = None
                except Exception as exc:
                    delay = backoff.next()
                    self._log.warning("fetch_failed", error=f"{type(exc).__name__}: {exc}", retry_in_s=round(delay, 3))
                    if finished is not None:  # the reporter keeps trying to report it
                        self._done.put(finished)
                        finished = None
                    self._stopping.wait(delay)
                    continue
                backoff.reset()
                with cond:
                    if finished is not None:  # a next task was there: report while it runs
                        self._done.put(finished)
                        finished = None
                    for item in items:
                        self._held[item.item_id] = item
                    if items and not self._stopping.is_set():
                        self._free -= 1
                        return items[0]
            return None  # anything fetched as the worker stopped stays held: shutdown releases it
        finally:
            with cond:
                if finished is not None:  # stopped before it could be reported here
                    self._done.put(finished)
                self._fetching -= 1
                cond.notify_all()

    # --- reporter and heartbeat ----------------------------------------------------------------------

    def _report(self) -> None:
        finished = False
        while not finished:
            first = self._done.get()
            if first is None:
                return
            batch = [first]
            while True:
                try:
                    more = self._done.get_nowait()
                except stdqueue.Empty:
                    break
                if more is None:
                    finished = True
                    break
                batch.append(more)
            payloads = [(item, dumps_outcome(outcome, self._key)) for item, outcome in batch]
            if self._retry("complete", functools.partial(self.queue.complete, self.consumer, payloads)):
                with self._cond:
                    for item, _ in batch:
                        self._held.pop(item.item_id, None)

    def _beat(self) -> None:
        while True:
            try:
                self.queue.heartbeat(self.consumer, self.info())
            except BackendAccessError as exc:  # wrong credentials stay wrong: stop, exit code 2
                self._log.error("worker_access_denied", error=str(exc))
                self.fatal_error = exc
                self._forced.set()  # nothing to wait for: give up retrying at once
                self.stop()
                return
            except Exception as exc:
                self._log.warning("heartbeat_failed", error=f"{type(exc).__name__}: {exc}")
            else:
                if not self._registered:
                    with self._cond:
                        self._registered = True  # reclaimers now see us alive: safe to hold work
                        self._cond.notify_all()
            if self._beat_exit.is_set():
                return
            try:
                moved = self.queue.reclaim()
                with self._cond:
                    known = set(self._held)
                lost = self.queue.release_lost(self.consumer, known, self.queue.worker_timeout)
            except Exception as exc:
                self._log.warning("reclaim_failed", error=f"{type(exc).__name__}: {exc}")
            else:
                if moved:
                    self._log.info("tasks_reclaimed", count=moved)
                if lost:
                    self._log.warning("lost_deliveries_released", count=lost)
            self._beat_now.wait(self.heartbeat_interval)
            self._beat_now.clear()

    # --- shutdown ----------------------------------------------------------------------------------

    def _shutdown(self, reporter: threading.Thread, beater: threading.Thread) -> None:
        with self._cond:
            self._stopping.set()
            self._cond.notify_all()
        self._beat_now.set()  # publish state "stopping" now
        deadline = time.monotonic() + self.graceful_shutdown_timeout
        busy = self.max_concurrent_tasks - self._free
        if busy:
            self._log.info("worker_stopping", running=busy, timeout_s=self.graceful_shutdown_timeout)
        while busy and not self._forced.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            ready, _, _ = select.select([self._wake_r], [], [], remaining)
            if ready and b"s" in self._wake_r.recv(64):
                self._forced.set()  # a second stop: give back what still runs, now
            with self._cond:
                busy = self.max_concurrent_tasks - self._free
        with self._cond:  # a slot still reading from the queue returns within block_s
            self._cond.wait_for(lambda: self._fetching == 0, timeout=self.block_s + 5.0)
        if reporter.is_alive():
            self._done.put(None)
            reporter.join(timeout=max(5.0, deadline - time.monotonic()))
        with self._cond:
            unfinished = list(self._held.values())
            self._held.clear()
        if unfinished:
            self._log.warning("tasks_released", count=len(unfinished), tasks=[i.task_id for i in unfinished][:20])
            self._retry("release", lambda: self.queue.release(self.consumer, unfinished), attempts=20)
            self.tasks_released += len(unfinished)
        self._beat_exit.set()
        self._beat_now.set()
        if beater.is_alive():
            beater.join(timeout=5.0)
        self._retry("leave", lambda: self.queue.leave(self.consumer), attempts=5)
        self._log.info(
            "worker_stopped",
            tasks_processed=self.tasks_processed,
            tasks_succeeded=self.tasks_succeeded,
            tasks_failed=self.tasks_failed,
            tasks_released=self.tasks_released,
            total_execution_time=round(self.total_execution_time, 6),
        )
        self._stopped_hook()

    def _stopped_hook(self) -> None:
        if self._on_stopped is not None:
            try:
                self._on_stopped(worker_id=self.worker_id, worker=self)
            except Exception as exc:
                self._log.warning("worker_stopped_hook_failed", error=f"{type(exc).__name__}: {exc}")

    def _retry(self, what: str, call: Callable[[], Any], attempts: int | None = None) -> bool:
        """Call until it succeeds; give up when forced, after ``attempts``, or when stopping and past
        the graceful timeout. What is not acknowledged stays owned by this consumer and is reclaimed
        by others once its heartbeat expires, so giving up loses nothing."""
        backoff = Backoff()
        stop_by: float | None = None
        tries = 0
        while True:
            try:
                call()
                return True
            except Exception as exc:
                tries += 1
                if self._stopping.is_set() and stop_by is None:
                    stop_by = time.monotonic() + max(self.graceful_shutdown_timeout, 5.0)
                gave_up = (
                    self._forced.is_set()
                    or (attempts is not None and tries >= attempts)
                    or (stop_by is not None and time.monotonic() > stop_by)
                )
                delay = backoff.next()
                self._log.warning(
                    f"{what}_failed",
                    error=f"{type(exc).__name__}: {exc}",
                    retry_in_s=None if gave_up else round(delay, 3),
                )
                if gave_up:
                    return False
                time.sleep(delay)

    def _poke(self, what: bytes) -> None:
        with contextlib.suppress(OSError):  # buffer full (already woken) or closed
            self._wake_w.send(what)

    def _install_signal_handlers(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}

        def handle(signum: int, frame: FrameType | None) -> None:
            self.stop()

        return {signum: signal.signal(signum, handle) for signum in (signal.SIGTERM, signal.SIGINT)}

    def __repr__(self) -> str:
        return f"TaskWorker({self.worker_id!r}, max_concurrent_tasks={self.max_concurrent_tasks})"
