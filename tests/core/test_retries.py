"""Retries and timeouts per task: delays, retry_on, attempts counted and reported, hooks, cycles,
bad input, and timeouts in the run's process (threads), in process pools and far-side requests."""

from __future__ import annotations

import os
import pickle
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import pytest
from structlog.testing import capture_logs

from graflow import (
    CoordinationBackend,
    TaskExecutionContext,
    TaskHandler,
    TaskWrapper,
    WorkflowEngine,
    hookimpl,
    task,
    workflow,
)
from graflow.coordination.base import MemberOutcome
from graflow.core import remote
from graflow.core.attempt_options import AttemptOptions
from graflow.core.attempts import AttemptObserver, run_attempts
from graflow.core.handler import DirectTaskHandler
from graflow.exceptions import (
    MissingParameterError,
    ParallelGroupError,
    TaskExecutionError,
    TaskTimeoutError,
    TimeoutNotSupportedError,
)
from graflow.queue.base import NO_DATA


class Recorder:
    """Every lifecycle hook call, with all its arguments."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    @hookimpl
    def graflow_run_started(self, run_id: str, session_id: str) -> None:
        self.calls.append(("run_started", {"run_id": run_id, "session_id": session_id}))

    @hookimpl
    def graflow_task_retrying(
        self,
        run_id: str,
        session_id: str,
        task_id: str,
        cycle: int,
        attempt: int,
        delay_s: float,
        error: BaseException,
    ) -> None:
        self.calls.append(
            (
                "retrying",
                {
                    "run_id": run_id,
                    "session_id": session_id,
                    "task_id": task_id,
                    "cycle": cycle,
                    "attempt": attempt,
                    "delay_s": delay_s,
                    "error": error,
                },
            )
        )

    @hookimpl
    def graflow_task_succeeded(self, task_id: str, cycle: int, result: Any, attempts: int) -> None:
        self.calls.append(("succeeded", {"task_id": task_id, "cycle": cycle, "result": result, "attempts": attempts}))

    @hookimpl
    def graflow_task_failed(self, task_id: str, cycle: int, error: BaseException, attempts: int) -> None:
        self.calls.append(("failed", {"task_id": task_id, "cycle": cycle, "error": error, "attempts": attempts}))

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [data for name, data in self.calls if name == kind]


def flaky(failures: int, error: type[BaseException] = OSError) -> Any:
    """A function that raises ``error`` on its first ``failures`` calls, then returns the call count."""
    calls: list[int] = []

    def fn() -> int:
        calls.append(1)
        if len(calls) <= failures:
            raise error(f"failure {len(calls)}")
        return len(calls)

    fn.calls = calls  # type: ignore[attr-defined]
    return fn


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Set at the end of a test: attempts blocked on it (abandoned by a timeout) return and end."""
    event = threading.Event()
    yield event
    event.set()


# --- options: delays and bad input ---------------------------------------------------------------


def test_delays_grow_by_backoff_up_to_max_delay() -> None:
    options = AttemptOptions.build("t", retries=6, retry_delay=1.0, backoff=2.0, max_delay=5.0, jitter=False)
    assert [options.attempt_delay(n) for n in range(1, 7)] == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    constant = AttemptOptions.build("t", retries=3, retry_delay=0.5, backoff=1, jitter=False)
    assert [constant.attempt_delay(n) for n in (1, 2, 3)] == [0.5, 0.5, 0.5]
    huge = AttemptOptions.build("t", retries=3000, retry_delay=1.0, backoff=10.0, max_delay=7.0, jitter=False)
    assert huge.attempt_delay(2000) == 7.0  # no OverflowError for a late attempt


def test_equal_jitter_keeps_the_delay_between_half_and_all_of_the_planned_one() -> None:
    options = AttemptOptions.build("t", retries=3, retry_delay=2.0, backoff=3.0, jitter=True)
    assert options.attempt_delay(2, rand=lambda: 0.0) == 3.0  # planned 6 s: at least half of it
    assert options.attempt_delay(2, rand=lambda: 1.0) == 6.0
    assert options.attempt_delay(2, rand=lambda: 0.5) == 4.5
    assert 3.0 <= options.attempt_delay(2) <= 6.0


def test_max_delay_defaults_to_a_minute_or_retry_delay_when_longer() -> None:
    assert AttemptOptions.build("t", retries=1).max_delay == 60.0
    assert AttemptOptions.build("t", retries=1, retry_delay=120).max_delay == 120.0


def test_options_are_built_only_when_there_is_something_to_do() -> None:
    assert TaskWrapper("plain", lambda: 1, register=False).attempts is None
    # retry options with retries=0 are accepted (and validated), and cost nothing at run time
    assert TaskWrapper("zero", lambda: 1, retries=0, retry_delay=3, register=False).attempts is None
    timed = TaskWrapper("timed", lambda: 1, timeout=5, register=False)
    assert timed.attempts == AttemptOptions.build("timed", timeout=5)

    @task(retries=3, retry_delay=1.0, backoff=2.0, max_delay=60, jitter=True, retry_on=(IOError,), timeout=30)
    def decorated() -> None: ...

    assert decorated.attempts == AttemptOptions(3, 1.0, 2.0, 60.0, True, (OSError,), 30.0)


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"retries": -1}, "retries must be >= 0"),
        ({"retries": 1.5}, "retries must be an int"),
        ({"retry_delay": -0.1}, "retry_delay must be >= 0"),
        ({"backoff": 0.5}, "backoff must be >= 1"),
        ({"retry_delay": 10, "max_delay": 5}, "max_delay (5) is shorter than retry_delay (10)"),
        ({"retry_on": ("OSError",)}, "retry_on must be an exception class"),
        ({"retry_on": (int,)}, "retry_on must be an exception class"),
        ({"retry_on": ()}, "retry_on must be an exception class"),
        ({"timeout": 0}, "timeout must be > 0"),
        ({"timeout": -5}, "timeout must be > 0"),
        ({"timeout": "30"}, "timeout must be a number"),
        ({"jitter": "yes"}, "jitter must be True or False"),
    ],
)
def test_bad_options_fail_at_declaration_naming_the_task_and_option(options: dict[str, Any], fragment: str) -> None:
    with pytest.raises((ValueError, TypeError)) as info:
        task(id="fetch_prices", **options)(lambda: None)
    assert "task 'fetch_prices'" in str(info.value)
    assert fragment in str(info.value)


def test_options_pickle_with_their_task() -> None:
    options = AttemptOptions.build("t", retries=2, retry_on=(OSError, KeyError), timeout=1.5)
    assert pickle.loads(pickle.dumps(options)) == options

    class LocalError(Exception):
        pass

    local = TaskWrapper("by_value", lambda: 1, retries=4, retry_on=LocalError, register=False)
    copy = cloudpickle.loads(cloudpickle.dumps(local))
    assert copy.attempts is not None
    assert (copy.attempts.retries, copy.attempts.retry_on[0].__name__) == (4, "LocalError")


def test_retry_options_survive_a_checkpoint_and_resume(tmp_path: Path) -> None:
    from graflow.core.checkpoint import CheckpointManager
    from graflow.exceptions import MaxStepsExceededError

    def first(context: TaskExecutionContext) -> int:
        context.checkpoint(path=str(tmp_path / "after-first"))
        return 1

    recorder = Recorder()
    with workflow("resumable") as wf:
        TaskWrapper("first", first, inject_context=True) >> TaskWrapper(
            "second", flaky(1), retries=2, retry_delay=0, retry_on=OSError, timeout=30
        )
    with pytest.raises(MaxStepsExceededError):
        wf.execute(max_steps=1)  # stops after first's checkpoint
    context, _ = CheckpointManager.resume_from_checkpoint(str(tmp_path / "after-first"))
    resumed = context.graph.nodes["second"]
    assert isinstance(resumed, TaskWrapper) and resumed.attempts == AttemptOptions.build(
        "second", retries=2, retry_delay=0, retry_on=OSError, timeout=30
    )
    assert context.execute(max_steps=100, engine=WorkflowEngine(plugins=[recorder])) == 2
    assert recorder.of("succeeded")[0]["attempts"] == 2


# --- retries in a run ------------------------------------------------------------------------------


def test_a_flaky_task_is_retried_in_place_and_reports_its_attempts() -> None:
    recorder = Recorder()
    fn = flaky(2)
    with workflow("flaky") as wf:
        TaskWrapper("fetch", fn, retries=3, retry_delay=0, jitter=False) >> TaskWrapper("after", lambda fetch: fetch)
    result, ctx = wf.execute(engine=WorkflowEngine(plugins=[recorder]), ret_context=True)
    assert result == 3 and len(fn.calls) == 3
    assert ctx.cycle_counts["fetch"] == 1 and ctx.steps == 2  # the engine saw one execution
    assert [(c["task_id"], c["attempts"]) for c in recorder.of("succeeded")] == [("fetch", 3), ("after", 1)]
    assert [c["attempt"] for c in recorder.of("retrying")] == [1, 2]


def test_hook_graflow_task_retrying() -> None:
    recorder = Recorder()
    with workflow("hooked") as wf:
        TaskWrapper("fetch", flaky(2), retries=2, retry_delay=0.01, backoff=3, jitter=False)
    _, ctx = wf.execute(engine=WorkflowEngine(plugins=[recorder]), ret_context=True)
    (started,) = recorder.of("run_started")
    first, second = recorder.of("retrying")
    for call in (first, second):
        assert call["run_id"] == started["run_id"] and call["session_id"] == ctx.session_id
        assert (call["task_id"], call["cycle"]) == ("fetch", 1)
        assert isinstance(call["error"], OSError)
    assert (first["attempt"], first["delay_s"], str(first["error"])) == (1, 0.01, "failure 1")
    assert (second["attempt"], second["delay_s"], str(second["error"])) == (2, pytest.approx(0.03), "failure 2")
    names = [name for name, _ in recorder.calls]
    assert names == ["run_started", "retrying", "retrying", "succeeded"]


def test_the_retrying_hook_is_not_called_when_nobody_implements_it() -> None:
    engine = WorkflowEngine(plugins=[object()])
    assert engine.host.lifecycle["graflow_task_retrying"] is None


def test_a_broken_retrying_hook_does_not_stop_the_retry() -> None:
    class Broken:
        @hookimpl
        def graflow_task_retrying(self, task_id: str) -> None:
            raise RuntimeError("observer bug")

    with workflow("broken_hook") as wf:
        TaskWrapper("fetch", flaky(1), retries=1, retry_delay=0)
    assert wf.execute(engine=WorkflowEngine(plugins=[Broken()])) == 2


def test_the_retrying_event_carries_task_cycle_attempt_delay_and_error() -> None:
    with workflow("logged") as wf:
        TaskWrapper("fetch", flaky(1, ConnectionError), retries=1, retry_delay=0.02, jitter=False)
    with capture_logs() as logs:
        wf.execute()
    (event,) = [e for e in logs if e["event"] == "task_retrying"]
    assert event["task_id"] == "fetch" and event["cycle"] == 1 and event["attempt"] == 1
    assert event["delay_s"] == 0.02 and event["error"] == "ConnectionError: failure 1"
    assert event["log_level"] == "warning" and "run_id" in event


def test_retries_spent_fail_the_task_with_the_last_error_and_the_earlier_ones_noted() -> None:
    recorder = Recorder()
    fn = flaky(10)
    with workflow("spent") as wf:
        TaskWrapper("fetch", fn, retries=2, retry_delay=0)
    with pytest.raises(TaskExecutionError) as info:
        wf.execute(engine=WorkflowEngine(plugins=[recorder]))
    assert len(fn.calls) == 3
    assert isinstance(info.value.original, OSError) and str(info.value.original) == "failure 3"
    notes = "\n".join(info.value.original.__notes__)
    assert "failed after 3 attempts" in notes and "attempt 1: OSError: failure 1" in notes
    (failed,) = recorder.of("failed")
    assert failed["attempts"] == 3 and failed["error"] is info.value.original
    assert len(recorder.of("retrying")) == 2


def test_only_errors_matching_retry_on_are_retried() -> None:
    recorder = Recorder()
    fn = flaky(1, ValueError)
    with workflow("narrow") as wf:
        TaskWrapper("parse", fn, retries=3, retry_delay=0, retry_on=(IOError,))
    with pytest.raises(TaskExecutionError) as info:
        wf.execute(engine=WorkflowEngine(plugins=[recorder]))
    assert isinstance(info.value.original, ValueError) and len(fn.calls) == 1
    assert recorder.of("failed")[0]["attempts"] == 1 and recorder.of("retrying") == []
    subclass = flaky(1, FileNotFoundError)  # an OSError: matches IOError
    with workflow("subclass") as wf2:
        TaskWrapper("read", subclass, retries=1, retry_delay=0, retry_on=IOError)
    assert wf2.execute() == 2


def test_interrupts_and_graflow_verdicts_are_never_retried() -> None:
    options = AttemptOptions.build("t", retries=3, retry_on=(BaseException,))
    assert not options.retryable(KeyboardInterrupt())
    assert not options.retryable(SystemExit(1))
    assert not options.retryable(MissingParameterError("t", "x"))
    assert options.retryable(OSError())
    calls: list[int] = []

    def needs_x(x: int) -> int:
        calls.append(x)
        return x

    with workflow("missing") as wf:
        TaskWrapper("needs_x", needs_x, retries=3, retry_delay=0)
    with pytest.raises(TaskExecutionError) as info:
        wf.execute()
    assert isinstance(info.value.original, MissingParameterError) and calls == []


def test_retries_do_not_consume_the_cycles_of_next_iteration() -> None:
    failed_cycles: list[int] = []

    def loop(context: TaskExecutionContext, n: int = 0) -> int:
        if context.cycle_count not in failed_cycles:  # the first attempt of every cycle fails
            failed_cycles.append(context.cycle_count)
            raise OSError(f"cycle {context.cycle_count}")
        if n < 2:
            context.next_iteration(n + 1)
        return n

    recorder = Recorder()
    with workflow("loop") as wf:
        TaskWrapper("loop", loop, inject_context=True, max_cycles=3, retries=1, retry_delay=0)
    result, ctx = wf.execute(engine=WorkflowEngine(plugins=[recorder]), ret_context=True)
    assert result == 2 and ctx.cycle_counts["loop"] == 3 and failed_cycles == [1, 2, 3]
    assert [(c["cycle"], c["attempts"]) for c in recorder.of("succeeded")] == [(1, 2), (2, 2), (3, 2)]
    assert [c["cycle"] for c in recorder.of("retrying")] == [1, 2, 3]


def test_a_failed_attempts_requests_are_forgotten() -> None:
    ran: list[str] = []
    attempts: list[int] = []

    def parent(context: TaskExecutionContext) -> str:
        attempts.append(1)
        context.next_task(TaskWrapper("child", lambda: ran.append("child")))
        if len(attempts) == 1:
            context.next_iteration()  # asked by the failed attempt only
            raise OSError("after asking")
        return "done"

    with workflow("requests") as wf:
        TaskWrapper("parent", parent, inject_context=True, retries=1, retry_delay=0)
    _, ctx = wf.execute(ret_context=True)
    assert ran == ["child"] and ctx.cycle_counts["parent"] == 1


def test_group_policy_sees_only_the_final_outcome() -> None:
    recorder = Recorder()
    with workflow("group") as wf:
        (TaskWrapper("steady", lambda: "s") | TaskWrapper("shaky", flaky(2), retries=2, retry_delay=0)).with_execution(
            CoordinationBackend.THREADING
        ).set_group_name("g")  # strict policy
    _, ctx = wf.execute(engine=WorkflowEngine(plugins=[recorder]), ret_context=True)
    assert ctx.results["g"] == {"steady": "s", "shaky": 3}
    assert {c["task_id"]: c["attempts"] for c in recorder.of("succeeded")}["shaky"] == 3
    assert recorder.of("failed") == []


def test_a_member_that_spends_its_retries_fails_the_group_once() -> None:
    recorder = Recorder()
    with workflow("group_fail") as wf:
        (TaskWrapper("ok", lambda: 1) | TaskWrapper("bad", flaky(9), retries=1, retry_delay=0)).with_execution(
            CoordinationBackend.DIRECT
        ).set_group_name("g")
    with pytest.raises(ParallelGroupError) as info:
        wf.execute(engine=WorkflowEngine(plugins=[recorder]))
    assert info.value.failed_tasks == [("bad", "OSError: failure 2")]
    assert [(c["task_id"], c["attempts"]) for c in recorder.of("failed")] == [("bad", 2)]


def test_a_retry_wait_ends_when_the_run_ends() -> None:
    """A member abandoned by its group (group_timeout) must not sleep out a long delay and retry."""

    class Ended:
        def __init__(self) -> None:
            self.results: dict[str, Any] = {}
            self.attempt_observer = AttemptObserver("run", "session", _NullLog(), None)
            self.attempt_observer.stop.set()

    fn = flaky(5)
    member = TaskWrapper("member", fn, retries=3, retry_delay=600, register=False)
    tctx = TaskExecutionContext(Ended(), "member", 1, NO_DATA)
    with pytest.raises(OSError) as info:
        run_attempts(DirectTaskHandler(), member, tctx)
    assert len(fn.calls) == 1
    assert "the run ended while attempt 2 waited" in "\n".join(info.value.__notes__)


def test_a_member_abandoned_by_its_group_gives_up_its_retry_wait() -> None:
    reported = threading.Event()
    errors: list[BaseException] = []

    class Failures:
        @hookimpl
        def graflow_task_failed(self, task_id: str, error: BaseException) -> None:
            if task_id == "patient":
                errors.append(error)
                reported.set()

    def patient() -> None:
        raise OSError("down")

    with workflow("abandoned") as wf:
        (TaskWrapper("patient", patient, retries=1, retry_delay=600) | TaskWrapper("quick", lambda: 1)).with_execution(
            CoordinationBackend.THREADING, group_timeout=0.3
        )
    with pytest.raises(TaskTimeoutError, match=r"timed out after 0\.3s"):
        wf.execute(engine=WorkflowEngine(plugins=[Failures()]))
    assert reported.wait(30), "the member kept waiting out its 600 s retry delay after the run ended"
    assert "the run ended while attempt 2 waited" in "\n".join(errors[0].__notes__)


class _NullLog:
    def warning(self, *args: Any, **kwargs: Any) -> None: ...

    def error(self, *args: Any, **kwargs: Any) -> None: ...


# --- timeouts in the run's process ------------------------------------------------------------------


def test_direct_timeout_stops_waiting_and_fails_with_task_timeout_error(release: threading.Event) -> None:
    recorder = Recorder()
    with workflow("slow") as wf:
        TaskWrapper("slow", lambda: release.wait(60), timeout=0.2)
    with pytest.raises(TaskExecutionError) as info:
        wf.execute(engine=WorkflowEngine(plugins=[recorder]))
    error = info.value.original
    assert isinstance(error, TaskTimeoutError) and isinstance(error, TimeoutError)
    assert "ran longer than its timeout of 0.2s" in str(error) and "cannot be killed" in str(error)
    assert (error.task_id, error.timeout_s, error.attempt) == ("slow", 0.2, 1)  # type: ignore[attr-defined]
    assert recorder.of("failed")[0]["attempts"] == 1


def test_a_timed_out_attempt_is_retried_and_its_late_requests_are_ignored(release: threading.Event) -> None:
    attempts: list[int] = []
    ran: list[str] = []

    def sometimes_slow(context: TaskExecutionContext) -> str:
        attempts.append(1)
        if len(attempts) == 1:
            release.wait(60)  # abandoned at the deadline; released when the test ends
            context.next_task(TaskWrapper("late", lambda: ran.append("late")))
            return "late result"
        return "fast"

    recorder = Recorder()
    with workflow("retry_timeout") as wf:
        TaskWrapper("job", sometimes_slow, inject_context=True, timeout=0.2, retries=1, retry_delay=0)
    result, ctx = wf.execute(engine=WorkflowEngine(plugins=[recorder]), ret_context=True)
    assert result == "fast" and recorder.of("succeeded")[0]["attempts"] == 2
    (retry,) = recorder.of("retrying")
    assert isinstance(retry["error"], TaskTimeoutError)
    release.set()
    assert ran == [] and "late" not in ctx.graph.nodes


def test_threading_member_timeout_is_a_member_failure(release: threading.Event) -> None:
    with workflow("threads") as wf:
        (
            TaskWrapper("quick", lambda: "q")
            | TaskWrapper("stuck", lambda: release.wait(60), timeout=0.2, retries=1, retry_delay=0)
        ).with_execution(CoordinationBackend.THREADING).with_policy("best_effort").set_group_name("g")
    _, ctx = wf.execute(ret_context=True)
    assert ctx.results["g"] == {"quick": "q"}


def test_timeout_on_a_handler_that_cannot_honour_it_fails_before_the_run_starts() -> None:
    class Remoteish(TaskHandler):
        def execute_task(self, task: TaskWrapper, context: Any) -> Any:
            return task.run()

    ran: list[str] = []
    with workflow("unsupported") as wf:
        TaskWrapper("first", lambda: ran.append("first")) >> TaskWrapper("gpu_job", lambda: 1, handler="gpu", timeout=5)
    engine = WorkflowEngine()
    engine.register_handler("gpu", Remoteish())
    with pytest.raises(TimeoutNotSupportedError) as info:
        wf.execute(engine=engine)
    assert ran == []
    message = str(info.value)
    assert "'gpu_job'" in message and "'gpu'" in message and "Remoteish" in message and "timeout" in message
    assert "supports_timeout" in message


def test_timeout_on_a_dynamic_task_is_checked_when_it_runs() -> None:
    class Plain(TaskHandler):
        def execute_task(self, task: TaskWrapper, context: Any) -> Any:
            return task.run()

    def spawner(context: TaskExecutionContext) -> None:
        context.next_task(TaskWrapper("dyn", lambda: 1, handler="plain", timeout=1))

    with workflow("dynamic") as wf:
        TaskWrapper("spawner", spawner, inject_context=True)
    engine = WorkflowEngine()
    engine.register_handler("plain", Plain())
    with pytest.raises(TaskExecutionError) as info:
        wf.execute(engine=engine)
    assert isinstance(info.value.original, TimeoutNotSupportedError) and info.value.task_id == "dyn"


def test_a_handler_that_supports_timeouts_runs_attempts_in_a_thread(release: threading.Event) -> None:
    class Local(TaskHandler):
        supports_timeout = True

        def execute_task(self, task: TaskWrapper, context: Any) -> Any:
            return task.run()

    with workflow("local_handler") as wf:
        TaskWrapper("a", lambda: "fine", handler="local", timeout=5) >> TaskWrapper(
            "b", lambda: release.wait(60), handler="local", timeout=0.2
        )
    engine = WorkflowEngine()
    engine.register_handler("local", Local())
    with pytest.raises(TaskExecutionError) as info:
        wf.execute(engine=engine)
    assert info.value.task_id == "b" and isinstance(info.value.original, TaskTimeoutError)


# --- far side: process pools and workers ---------------------------------------------------------------


def _request(member: TaskWrapper, channel_data: dict[str, Any] | None = None) -> remote.RemoteRequest:
    return remote.RemoteRequest(
        session_id="s", task=member, cycle=1, kwargs={}, channel_data=channel_data if channel_data is not None else {}
    )


def test_a_far_side_request_counts_its_attempts_in_the_outcome() -> None:
    outcome: MemberOutcome = remote.run_request(_request(TaskWrapper("m", flaky(2), retries=2, retry_delay=0)))
    assert (outcome.error, outcome.result, outcome.attempts) == (None, 3, 3)
    failed = remote.run_request(_request(TaskWrapper("m", flaky(5), retries=1, retry_delay=0)))
    assert isinstance(failed.error, OSError) and failed.attempts == 2
    assert remote.run_request(_request(TaskWrapper("m", lambda: 1))).attempts == 1


@pytest.mark.slow
def test_a_far_side_timed_attempt_runs_in_a_child_that_is_killed(tmp_path: Path) -> None:
    marker = tmp_path / "first-attempt-pid"

    def hangs_once(context: TaskExecutionContext) -> int:
        channel = context.get_channel()
        channel.append("pids", os.getpid())
        if not marker.exists():
            marker.write_text(str(os.getpid()))
            time.sleep(600)
        context.next_iteration(5)
        return len(channel.get("pids"))

    member = TaskWrapper("m", hangs_once, inject_context=True, timeout=2.0, retries=1, retry_delay=0)
    outcome = remote.run_request(_request(member, {"pids": []}))
    assert outcome.error is None, outcome.error
    assert outcome.attempts == 2 and outcome.iterate == (5,)
    # A killed attempt reports nothing: its writes to a snapshot channel are lost with it.
    assert outcome.result == 1
    (op,) = outcome.channel_ops or []
    first_pid = int(marker.read_text())
    assert op[:2] == ("append", "pids") and op[2] not in (os.getpid(), first_pid)
    with pytest.raises(ProcessLookupError):
        os.kill(first_pid, 0)  # the first attempt's process was killed (and reaped)


@pytest.mark.slow
def test_multiprocessing_member_sleeping_forever_is_killed_and_retried_one_succeeds(tmp_path: Path) -> None:
    marker = str(tmp_path / "attempted")

    def forever() -> None:
        time.sleep(10_000)

    def second_time_lucky() -> str:
        import os as os_
        import time as time_

        if not os_.path.exists(marker):
            open(marker, "w").close()
            time_.sleep(10_000)
        return "lucky"

    with workflow("mp_timeouts") as wf:
        (
            TaskWrapper("forever", forever, timeout=1.0)
            | TaskWrapper("lucky", second_time_lucky, timeout=1.0, retries=1, retry_delay=0)
        ).with_execution(CoordinationBackend.MULTIPROCESSING, max_workers=2).with_policy("best_effort").set_group_name(
            "g"
        )
    _, ctx = wf.execute(ret_context=True)
    assert ctx.results["g"] == {"lucky": "lucky"}
    assert os.path.exists(marker)


def test_task_timeout_error_crosses_processes_with_its_attributes() -> None:
    """Its two builtin bases (RuntimeError, TimeoutError) once made it fail to unpickle."""
    error = TaskTimeoutError("too slow")
    error.task_id = "t"  # type: ignore[attr-defined]
    error.add_note("a note")
    copy = cloudpickle.loads(cloudpickle.dumps(error))
    assert type(copy) is TaskTimeoutError and str(copy) == "too slow"
    assert copy.task_id == "t" and copy.__notes__ == ["a note"]


def test_a_bound_instance_keeps_the_retry_timeout_and_cache_options() -> None:
    """``task.bind(...)`` / ``task(task_id=..., ...)`` make new tasks: they must not lose the options."""

    def fetch(region: str) -> str:
        return region

    base = TaskWrapper(
        "fetch", fetch, retries=2, retry_delay=0.5, retry_on=(OSError,), timeout=5, cache=True, cache_ttl=60
    )
    bound = base.bind("fetch_eu", region="eu")
    assert bound.attempts == base.attempts and bound.attempts is not None
    assert bound._cache is not None and bound._cache.ttl == 60
    assert base(task_id="fetch_us", region="us").attempts == base.attempts
