"""The in-process coordinators of graflow-core: direct, threading and multiprocessing."""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import multiprocessing
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from graflow.coordination.base import GroupCoordinator, MemberOutcome, MemberRun, MemberRunner
from graflow.core import remote

ABORT_GRACE_S = 2.0
"""How long an abandoned group's processes get to exit on SIGTERM before they are killed."""


def _drain(outcomes: queue.SimpleQueue[MemberOutcome], timeout: float | None) -> list[MemberOutcome]:
    """Block for the first outcome (up to ``timeout``), then take every one already there."""
    try:
        drained = [outcomes.get(timeout=timeout)]
    except queue.Empty:
        return []
    while True:
        try:
            drained.append(outcomes.get_nowait())
        except queue.Empty:
            return drained


class DirectCoordinator(GroupCoordinator):
    """Members run one after another in the calling thread: deterministic, for debugging."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self._pending: deque[MemberRun] = deque()

    def open(self, runner: MemberRunner) -> None:
        self._runner = runner

    def submit(self, runs: Sequence[MemberRun]) -> None:
        self._pending.extend(runs)

    def collect(self, timeout: float | None = None) -> list[MemberOutcome]:
        if not self._pending:
            return []
        return [self._runner.run_member(self._pending.popleft())]


class ThreadingCoordinator(GroupCoordinator):
    """A fixed set of threads pulling runs from a shared deque.

    No future per member: with 1,000 no-op members a future and its callbacks cost more than the
    task itself (performance issue, W2). Threads start lazily, up to ``max_workers``.
    """

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.max_workers = int(config.get("max_workers") or min(32, (os.cpu_count() or 1) + 4))
        self._runs: deque[MemberRun] = deque()
        self._outcomes: queue.SimpleQueue[MemberOutcome] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._wake = threading.Condition()
        self._closed = False
        self._submitted = 0
        self._collected = 0

    def open(self, runner: MemberRunner) -> None:
        self._runner = runner

    def _work(self) -> None:
        runs, run_member, put = self._runs, self._runner.run_member, self._outcomes.put
        while True:
            try:
                run = runs.popleft()
            except IndexError:
                with self._wake:
                    while not runs and not self._closed:
                        self._wake.wait()
                    if self._closed:
                        return
                continue
            try:
                outcome = run_member(run)
            except BaseException as exc:  # never let the thread die without an outcome: collect would wait forever
                outcome = MemberOutcome(run.task_id, run.cycle, error=exc)
            put(outcome)

    def submit(self, runs: Sequence[MemberRun]) -> None:
        self._submitted += len(runs)
        self._runs.extend(runs)
        wanted = min(self.max_workers, len(self._runs)) - len(self._threads)
        for _ in range(max(0, wanted)):
            thread = threading.Thread(target=self._work, name="graflow-group", daemon=True)
            thread.start()
            self._threads.append(thread)
        with self._wake:
            self._wake.notify_all()

    def collect(self, timeout: float | None = None) -> list[MemberOutcome]:
        outcomes = _drain(self._outcomes, timeout)
        self._collected += len(outcomes)
        return outcomes

    def close(self) -> None:
        self._runs.clear()
        with self._wake:
            self._closed = True
            self._wake.notify_all()
        if self._collected < self._submitted:
            # A group that timed out or failed early: a member may still be running and may never
            # return. The daemon threads exit after their current run; joining them would turn
            # group_timeout into a hang.
            return
        for thread in self._threads:
            thread.join()


class MultiprocessingCoordinator(GroupCoordinator):
    """Members run in a process pool; tasks and results cross as cloudpickle.

    Channel writes travel back as a journal and are replayed on the run's channel, so atomic
    operations (``increment``) from several processes add up. ``start_method`` defaults to
    ``spawn``: safe with threads in the parent, at ~0.1 s per worker process.
    """

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.max_workers = int(config.get("max_workers") or os.cpu_count() or 1)
        self.start_method = str(config.get("start_method", "spawn"))
        # The run's signing key (its config's ``secret_key``, else GRAFLOW_SECRET_KEY): it signs the
        # payloads, and the pool's processes get it with each payload to verify them and to sign
        # and check the cache entries they read and write, as the run's own process does.
        self._key = remote.secret_key(config)
        self._outcomes: queue.SimpleQueue[MemberOutcome] = queue.SimpleQueue()
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None

    def open(self, runner: MemberRunner) -> None:
        self._runner = runner
        self._pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=self.max_workers, mp_context=multiprocessing.get_context(self.start_method)
        )

    def submit(self, runs: Sequence[MemberRun]) -> None:
        assert self._pool is not None
        encoder = remote.RequestEncoder(self._key)
        for run in runs:
            payload = encoder.dumps(self._runner.build_request(run))
            future = self._pool.submit(remote.execute_payload, payload, self._key)
            future.add_done_callback(functools.partial(self._done, run))

    def _done(self, run: MemberRun, future: concurrent.futures.Future[bytes]) -> None:
        self._outcomes.put(self._decode(future, run, self._key))

    @staticmethod
    def _decode(future: concurrent.futures.Future[bytes], run: MemberRun, key: bytes | None) -> MemberOutcome:
        try:
            return remote.loads_outcome(future.result(), key)
        except BaseException as exc:  # the worker process died, or the outcome was unreadable
            return MemberOutcome(run.task_id, run.cycle, error=exc, worker_id="pool")  # reported by the run

    def collect(self, timeout: float | None = None) -> list[MemberOutcome]:
        return _drain(self._outcomes, timeout)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def abort(self) -> None:
        """Stop the pool's processes: a member still running (the one a ``group_timeout`` gave up
        on, say) is terminated, not left to run. Left alive, it would also hang the interpreter's
        exit, which joins every pool process."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        # ProcessPoolExecutor has no public way to stop its processes before Python 3.14
        # (terminate_workers); its _processes (pid -> Process) is there since 3.2, cleared by shutdown.
        processes = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        _stop_processes(processes)


def _stop_processes(processes: Sequence[Any], grace: float = ABORT_GRACE_S) -> None:
    """SIGTERM each process, then SIGKILL those still alive after ``grace`` seconds."""
    for process in processes:
        with contextlib.suppress(ProcessLookupError, ValueError):  # gone already, or closed
            process.terminate()
    deadline = time.monotonic() + grace
    for process in processes:
        with contextlib.suppress(ValueError):
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join(1.0)
