"""Timed attempts: what an abandoned thread may still touch, what a killed child leaves behind, and
how the child reports what went wrong (its verdict on retrying included); the build-time routing
of a task through the attempt and cache paths."""

from __future__ import annotations

import math
import os
import pickle
import select
import signal
import subprocess
import sys
import textwrap
import threading
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from graflow import TaskHandler, TaskWrapper, WorkflowEngine, workflow
from graflow.coordination.base import MemberOutcome
from graflow.core import remote
from graflow.core.attempt_process import START_METHOD_ENV
from graflow.exceptions import ExecutionError, RemoteTaskError, SerializationError


def _request(member: TaskWrapper) -> remote.RemoteRequest:
    return remote.RemoteRequest(session_id="s", task=member, cycle=1, kwargs={}, channel_data={})


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Set at the end of a test: attempts blocked on it (abandoned by a timeout) return and end."""
    event = threading.Event()
    yield event
    event.set()


# --- an abandoned attempt in a thread ---------------------------------------------------------------


class SetResultHandler(TaskHandler):
    """Records the result with ``set_result`` (the handler contract allows it) instead of returning it;
    ``written`` is set after each write, so a test can wait for an abandoned attempt's late one."""

    supports_timeout = True

    def __init__(self) -> None:
        self.written = threading.Semaphore(0)

    def execute_task(self, task: Any, context: Any) -> Any:
        value = task.run()
        if value is not None:
            context.set_result(task.task_id, value)
        self.written.release()
        return None


def test_an_abandoned_thread_attempt_cannot_rewrite_the_runs_result(release: threading.Event) -> None:
    calls: list[int] = []

    def job() -> str:
        calls.append(1)
        if len(calls) == 1:
            release.wait(60)
            return "stale (attempt 1, abandoned)"
        return "fresh (attempt 2)"

    handler = SetResultHandler()
    engine = WorkflowEngine()
    engine.register_handler("setres", handler)
    with workflow("w") as wf:
        TaskWrapper("job", job, handler="setres", timeout=0.3, retries=1, retry_delay=0)
    result, ctx = wf.execute(engine=engine, ret_context=True)
    assert result == "fresh (attempt 2)"
    assert handler.written.acquire(timeout=30)  # attempt 2's write
    release.set()
    assert handler.written.acquire(timeout=30)  # the abandoned attempt 1 has written too, late
    assert ctx.results["job"] == "fresh (attempt 2)"
    assert ctx.get_result("job") == "fresh (attempt 2)"


def test_a_retry_never_returns_what_the_abandoned_attempt_recorded(release: threading.Event) -> None:
    calls: list[int] = []
    late_write_done = threading.Event()

    def job() -> str | None:
        calls.append(1)
        if len(calls) == 1:
            release.wait(60)
            return "stale (attempt 1, abandoned)"
        release.set()  # let attempt 1 write while attempt 2 still runs
        late_write_done.wait(30)
        return None  # attempt 2 records nothing: its result is None

    handler = SetResultHandler()

    class Signalling(SetResultHandler):
        def execute_task(self, task: Any, context: Any) -> Any:
            first = len(calls) == 0
            handler.execute_task(task, context)
            if first:
                late_write_done.set()
            return None

    engine = WorkflowEngine()
    engine.register_handler("setres", Signalling())
    with workflow("w") as wf:
        TaskWrapper("job", job, handler="setres", timeout=0.3, retries=1, retry_delay=0)
    result, ctx = wf.execute(engine=engine, ret_context=True)
    assert late_write_done.is_set()
    assert result is None and ctx.results["job"] is None


# --- a killed attempt in a child process -------------------------------------------------------------


def test_a_timed_attempt_child_leads_its_own_process_group() -> None:
    """So a signal to the worker's group (its shutdown, Ctrl-C) leaves the decision to the worker,
    and the child's group is what is killed at the deadline."""

    def where() -> tuple[int, int, int]:
        import os as os_

        return os_.getpid(), os_.getpgid(0), os_.getsid(0)

    outcome = remote.run_request(_request(TaskWrapper("m", where, timeout=60, register=False)))
    assert outcome.error is None, outcome.error
    pid, pgid, sid = outcome.result
    assert pid != os.getpid()
    assert pgid == pid and sid == pid
    assert pgid != os.getpgid(0)


def _fifo(tmp_path: Path) -> tuple[str, int]:
    """A FIFO the attempt's processes hold open for writing: EOF on it means they are all gone."""
    path = str(tmp_path / "held")
    os.mkfifo(path)
    return path, os.open(path, os.O_RDONLY | os.O_NONBLOCK)


def _read_until_eof(fd: int, limit_s: float = 60.0) -> bytes:
    """Everything written to the FIFO until its last writer is gone (fails after ``limit_s``)."""
    got = b""
    while True:
        ready, _, _ = select.select([fd], [], [], limit_s)
        assert ready, f"a process of the attempt still holds the pipe open after {limit_s}s (read {got!r})"
        chunk = os.read(fd, 64)
        if not chunk:
            return got
        got += chunk


def _holds_fifo(path: str) -> Any:
    def spawns() -> None:
        import subprocess as sp
        import time as t

        with open(path, "w") as fifo:
            sp.Popen(["sleep", "600"], stdout=fifo)  # a grandchild holding the FIFO
            fifo.write("x")
            fifo.flush()
            t.sleep(600)

    return spawns


@pytest.mark.slow
def test_a_killed_timed_attempt_takes_the_processes_it_started_with_it(tmp_path: Path) -> None:
    path, fd = _fifo(tmp_path)
    try:
        member = TaskWrapper("m", _holds_fifo(path), timeout=2.0, register=False)
        outcome = remote.run_request(_request(member))
        assert type(outcome.error).__name__ == "TaskTimeoutError"
        assert _read_until_eof(fd) == b"x"  # EOF: the grandchild died with its attempt
    finally:
        os.close(fd)


@pytest.mark.slow
def test_the_attempt_and_what_it_started_die_with_their_parent(tmp_path: Path) -> None:
    path, fd = _fifo(tmp_path)
    script = textwrap.dedent(
        f"""
        from graflow import TaskWrapper
        from graflow.core import remote

        def spawns():
            import subprocess, time
            with open({path!r}, "w") as fifo:
                subprocess.Popen(["sleep", "600"], stdout=fifo)
                fifo.write("x")
                fifo.flush()
                time.sleep(600)

        member = TaskWrapper("m", spawns, timeout=600, register=False)
        remote.run_request(remote.RemoteRequest(session_id="s", task=member, cycle=1, kwargs={{}}, channel_data={{}}))
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    try:
        ready, _, _ = select.select([fd], [], [], 60)
        assert ready and os.read(fd, 1) == b"x"  # the attempt and its grandchild run
        parent.kill()  # a worker killed: nobody is left to kill the attempt at its deadline
        parent.wait()
        assert _read_until_eof(fd) == b""  # the child saw its parent go and killed its group
    finally:
        os.close(fd)
        if parent.poll() is None:
            parent.kill()


@pytest.mark.slow
def test_a_child_killed_by_a_signal_is_reported_with_the_signals_name() -> None:
    def terminated() -> None:
        import os as os_
        import signal as signal_

        os_.kill(os_.getpid(), signal_.SIGTERM)

    outcome = remote.run_request(_request(TaskWrapper("m", terminated, timeout=60, register=False)))
    assert isinstance(outcome.error, ExecutionError)
    assert "was killed by SIGTERM before reporting" in str(outcome.error)


# --- what the child reports ---------------------------------------------------------------------------


def test_a_child_that_cannot_load_the_request_reports_why_and_is_not_retried() -> None:
    module = types.ModuleType("graflow_test_only_here")  # importable here (sys.modules), not in a fresh process

    def work() -> int:
        return 1

    work.__module__ = module.__name__
    work.__qualname__ = "work"
    sys.modules[module.__name__] = module
    try:
        member = TaskWrapper("m", work, timeout=60, retries=2, retry_delay=0, register=False)
        module.work = member  # type: ignore[attr-defined]  # what the module exposes: pickled by reference
        outcome = remote.run_request(_request(member))
    finally:
        del sys.modules[module.__name__]
    assert isinstance(outcome.error, RemoteTaskError)
    assert outcome.error.remote_type == "ModuleNotFoundError"
    assert "graflow_test_only_here" in str(outcome.error)
    assert any("importable" in note for note in outcome.error.__notes__)
    assert outcome.attempts == 1  # the next child would fail the same way


def test_retry_on_matches_a_timed_far_side_error_that_cannot_be_rebuilt(tmp_path: Path) -> None:
    marker = tmp_path / "failed-once"

    class NeedsTwoArgs(OSError):  # pickles, but cannot be rebuilt: it comes back as RemoteTaskError
        def __init__(self, url: str, code: int) -> None:
            super().__init__(f"{url} answered {code}")

    def flaky() -> str:
        if not marker.exists():
            marker.write_text("1")
            raise NeedsTwoArgs("http://x", 503)
        return "ok"

    member = TaskWrapper("m", flaky, retries=1, retry_delay=0, retry_on=(OSError,), timeout=60, register=False)
    outcome = remote.run_request(_request(member))
    assert outcome.error is None, f"{type(outcome.error).__name__}: {outcome.error}"
    assert (outcome.result, outcome.attempts) == ("ok", 2)

    marker.unlink()
    other = TaskWrapper("m", flaky, retries=1, retry_delay=0, retry_on=(ValueError,), timeout=60, register=False)
    refused = remote.run_request(_request(other))
    assert isinstance(refused.error, RemoteTaskError) and refused.error.remote_type == "NeedsTwoArgs"
    assert refused.attempts == 1  # an OSError does not match retry_on=(ValueError,), there or here


def test_an_unpicklable_result_of_a_timed_far_side_attempt_is_not_retried(tmp_path: Path) -> None:
    runs = tmp_path / "runs"

    def makes_a_lock() -> Any:
        import threading as threading_

        with open(runs, "a") as f:
            f.write("x")
        return threading_.Lock()

    member = TaskWrapper("m", makes_a_lock, retries=2, retry_delay=0, timeout=60, register=False)
    outcome = remote.run_request(_request(member))
    assert isinstance(outcome.error, SerializationError)
    assert "cannot pickle" in str(outcome.error)
    assert runs.read_text() == "x" and outcome.attempts == 1


def test_an_unpicklable_result_is_a_never_retried_serialization_error() -> None:
    outcome = MemberOutcome("m", 1, result=threading.Lock())
    back = remote.loads_outcome(remote.dumps_outcome(outcome))
    assert isinstance(back.error, SerializationError) and back.retryable is False


# --- bad input ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"timeout": math.nan}, "timeout must be a finite number"),
        ({"timeout": math.inf}, "timeout must be a finite number"),
        ({"timeout": 1e300}, "timeout must be at most"),
        ({"retries": 1, "retry_delay": math.nan}, "retry_delay must be a finite number"),
        ({"retries": 1, "retry_delay": math.inf}, "retry_delay must be a finite number"),
        ({"retries": 1, "retry_delay": 10**400}, "retry_delay must be a finite number"),
        ({"retries": 1, "backoff": math.nan}, "backoff must be a finite number"),
        ({"retries": 1, "max_delay": math.nan}, "max_delay must be a finite number"),
        ({"retries": 1, "max_delay": math.inf}, "max_delay must be a finite number"),
    ],
)
def test_non_finite_numbers_are_refused_at_declaration(options: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        TaskWrapper("fetch_prices", lambda: None, register=False, **options)
    assert "task 'fetch_prices'" in str(info.value) and fragment in str(info.value)


@pytest.mark.parametrize("method", ["fork", "threads"])
def test_a_bad_attempt_start_method_fails_the_task_at_once(monkeypatch: pytest.MonkeyPatch, method: str) -> None:
    monkeypatch.setenv(START_METHOD_ENV, method)
    member = TaskWrapper("m", lambda: 1, timeout=60, retries=2, retry_delay=0, register=False)
    outcome = remote.run_request(_request(member))
    assert isinstance(outcome.error, ValueError)
    message = str(outcome.error)
    assert f"{START_METHOD_ENV}={method!r}" in message and "forkserver" in message and "spawn" in message
    assert outcome.attempts == 1


# --- one attribute check for a plain task ------------------------------------------------------------


def test_a_task_is_routed_once_when_built_and_when_unpickled() -> None:
    plain = TaskWrapper("plain", lambda: 1, register=False)
    retried = TaskWrapper("retried", lambda: 1, retries=1, register=False)
    timed = TaskWrapper("timed", lambda: 1, timeout=5, register=False)
    cached = TaskWrapper("cached", lambda: 1, cache=True, register=False)
    assert [t._wrapped for t in (plain, retried, timed, cached)] == [False, True, True, True]

    # A pickle written before the flag existed carries attempts/_cache but no _wrapped.
    old_state = {k: v for k, v in retried.__dict__.items() if k != "_wrapped"}
    restored = TaskWrapper.__new__(TaskWrapper)
    restored.__setstate__(old_state)
    assert restored._wrapped is True and restored.attempts == retried.attempts
    assert pickle.loads(pickle.dumps(TaskWrapper("p", abs, register=False)))._wrapped is False


def test_a_retried_task_still_retries_and_a_plain_one_runs_once() -> None:
    calls: list[int] = []

    def flaky() -> int:
        calls.append(1)
        if len(calls) < 2:
            raise OSError("once")
        return len(calls)

    with workflow("w") as wf:
        TaskWrapper("flaky", flaky, retries=1, retry_delay=0) >> TaskWrapper("plain", lambda flaky: flaky * 10)
    _, ctx = wf.execute(ret_context=True)
    assert ctx.results == {"flaky": 2, "plain": 20}


def test_sigterm_is_named_in_messages_for_negative_exit_codes() -> None:
    from graflow.core.attempt_process import _how_it_ended

    assert _how_it_ended(-signal.SIGKILL).startswith("was killed by SIGKILL (out of memory?")
    assert _how_it_ended(3).startswith("exited with code 3")
