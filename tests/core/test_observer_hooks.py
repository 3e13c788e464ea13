"""The hooks that let plugins observe groups, shipped tasks and workers (issue 13, observability).

Each hook is exercised through the code that calls it: a run with parallel groups, a request built
by a group and executed by ``run_request``, a TaskWorker fed by an in-memory work source (a unit
test double; the real Redis fleet is covered in tests/observability).
"""

from __future__ import annotations

import argparse
import inspect
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import attrs
import pytest
from memory_work_source import CountingMemorySource, MemorySource

import graflow.hookspecs as hookspecs
from graflow import ParallelGroup, TaskWrapper, WorkflowEngine, hookimpl, task, workflow
from graflow.coordination.base import GroupCoordinator, MemberOutcome, MemberRun, MemberRunner
from graflow.core import remote
from graflow.exceptions import GraflowError, ParallelGroupError
from graflow.plugins import manager
from graflow.plugins.manager import PluginHost
from graflow.worker import TaskWorker, WorkItem, WorkSource
from graflow.worker.main import build_parser


class GroupRecorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.lock = threading.Lock()

    def _add(self, name: str, data: dict[str, Any]) -> None:
        with self.lock:
            self.calls.append((name, data))

    @hookimpl
    def graflow_group_started(
        self, run_id: str, session_id: str, group_id: str, cycle: int, members: list[str], backend: str
    ) -> None:
        self._add("group_started", {"run_id": run_id, "group_id": group_id, "cycle": cycle, "members": members,
                                    "backend": backend})  # fmt: skip

    @hookimpl
    def graflow_group_finished(
        self, run_id: str, session_id: str, group_id: str, cycle: int, duration_s: float, error: BaseException | None
    ) -> None:
        self._add("group_finished", {"group_id": group_id, "cycle": cycle, "duration_s": duration_s, "error": error})

    @hookimpl
    def graflow_task_started(self, task_id: str) -> None:
        self._add("task_started", {"task_id": task_id})

    def names(self) -> list[str]:
        return [f"{name}:{data.get('group_id') or data.get('task_id')}" for name, data in self.calls]


def fan_out(fail: bool = False, backend: str = "threading") -> Any:
    def bad() -> None:
        raise ValueError("member failed")

    with workflow("groups") as wf:
        inner = ParallelGroup([TaskWrapper("i1", lambda: 1), TaskWrapper("i2", lambda: 2)], name="inner")
        members = [TaskWrapper("m1", lambda: 1), inner.with_execution("direct")]
        if fail:
            members.append(TaskWrapper("bad", bad))
        outer = ParallelGroup(members, name="outer").with_execution(backend)
        TaskWrapper("first", lambda: 0) >> outer
    return wf


def test_hook_graflow_group_started() -> None:
    recorder = GroupRecorder()
    fan_out(backend="direct").execute(engine=WorkflowEngine(plugins=[recorder]))
    started = [data for name, data in recorder.calls if name == "group_started"]
    assert [(s["group_id"], s["members"], s["backend"], s["cycle"]) for s in started] == [
        ("outer", ["m1", "inner"], "direct", 1),
        ("inner", ["i1", "i2"], "direct", 1),
    ]
    names = recorder.names()
    # A group's members are reported after it starts and before it finishes; nested groups nest.
    assert names.index("group_started:outer") < names.index("task_started:m1") < names.index("group_finished:outer")
    assert names.index("group_started:inner") < names.index("task_started:i1") < names.index("group_finished:inner")
    assert names.index("group_finished:inner") < names.index("group_finished:outer")


def test_hook_graflow_group_finished() -> None:
    recorder = GroupRecorder()
    fan_out().execute(engine=WorkflowEngine(plugins=[recorder]))
    finished = {data["group_id"]: data for name, data in recorder.calls if name == "group_finished"}
    assert finished["outer"]["error"] is None and finished["outer"]["duration_s"] >= 0
    failing = GroupRecorder()
    with pytest.raises(ParallelGroupError):
        fan_out(fail=True).execute(engine=WorkflowEngine(plugins=[failing]))
    (outer,) = [data for name, data in failing.calls if name == "group_finished" and data["group_id"] == "outer"]
    assert isinstance(outer["error"], ParallelGroupError)


def test_hook_graflow_task_retrying() -> None:
    """The contract the retry feature calls (issue 13): exactly these arguments, looked up once per build."""
    spec = inspect.signature(hookspecs.graflow_task_retrying)
    assert list(spec.parameters) == ["run_id", "session_id", "task_id", "cycle", "attempt", "delay_s", "error"]
    seen: list[tuple[str, int, float]] = []

    class Plugin:
        @staticmethod
        @hookimpl
        def graflow_task_retrying(task_id: str, attempt: int, delay_s: float) -> None:
            seen.append((task_id, attempt, delay_s))

    hook = PluginHost([Plugin]).lifecycle["graflow_task_retrying"]
    assert hook is not None
    hook(run_id="r", session_id="s", task_id="t", cycle=1, attempt=1, delay_s=0.5, error=OSError("x"))
    assert seen == [("t", 1, 0.5)]


# --- shipped tasks -----------------------------------------------------------------------------------


class CapturingCoordinator(GroupCoordinator):
    """Builds each member's remote request (as a remote backend would), keeps it, runs it here."""

    requests: list[remote.RemoteRequest] = []

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.outcomes: list[MemberOutcome] = []

    def open(self, runner: MemberRunner) -> None:
        self.runner = runner

    def submit(self, runs: Sequence[MemberRun]) -> None:
        for run in runs:
            request = self.runner.build_request(run)
            CapturingCoordinator.requests.append(request)
            self.outcomes.append(self.runner.run_member(run))

    def collect(self, timeout: float | None = None) -> list[MemberOutcome]:
        outcomes, self.outcomes = self.outcomes, []
        return outcomes


class ContextPlugin:
    def __init__(self, value: Any = "v") -> None:
        self.value = value
        self.calls: list[dict[str, Any]] = []

    @hookimpl
    def graflow_register_coordinators(self, register: Any) -> None:
        register("capture", CapturingCoordinator)

    @hookimpl
    def graflow_remote_context(
        self, run_id: str, session_id: str, group_id: str, task_id: str, cycle: int
    ) -> dict[str, str] | None:
        self.calls.append({"run_id": run_id, "group_id": group_id, "task_id": task_id, "cycle": cycle})
        return {"trace": f"{group_id}/{task_id}", "v": self.value}


def test_hook_graflow_remote_context() -> None:
    CapturingCoordinator.requests = []
    plugin = ContextPlugin()
    with workflow("ship") as wf:
        ParallelGroup([TaskWrapper("a", lambda: 1), TaskWrapper("b", lambda: 2)], name="g").with_execution("capture")
    wf.execute(engine=WorkflowEngine(plugins=[plugin]))
    assert sorted(r.context["trace"] for r in CapturingCoordinator.requests) == ["g/a", "g/b"]
    assert {c["group_id"] for c in plugin.calls} == {"g"} and {c["cycle"] for c in plugin.calls} == {1}
    # The context travels inside the signed payload.
    payload = remote.dumps_request(CapturingCoordinator.requests[0], key=b"k")
    assert remote.loads_request(payload, key=b"k").context == CapturingCoordinator.requests[0].context


def test_remote_context_must_be_plain_strings() -> None:
    with workflow("ship") as wf:
        ParallelGroup([TaskWrapper("a", lambda: 1)], name="g").with_execution("capture")
    with pytest.raises(GraflowError, match=r"task 'a'.*plain strings only"):
        wf.execute(engine=WorkflowEngine(plugins=[ContextPlugin(value=3)]))


def test_no_remote_context_without_a_plugin() -> None:
    CapturingCoordinator.requests = []

    class OnlyCoordinator:
        @staticmethod
        @hookimpl
        def graflow_register_coordinators(register: Any) -> None:
            register("capture", CapturingCoordinator)

    with workflow("ship") as wf:
        ParallelGroup([TaskWrapper("a", lambda: 1)], name="g").with_execution("capture")
    wf.execute(engine=WorkflowEngine(plugins=[OnlyCoordinator]))
    assert [r.context for r in CapturingCoordinator.requests] == [{}]


class RemoteRecorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    @hookimpl
    def graflow_remote_started(
        self, context: dict[str, str], session_id: str, task_id: str, cycle: int, worker_id: str | None, handler: str
    ) -> None:
        self.calls.append(("started", {"context": context, "session_id": session_id, "task_id": task_id,
                                       "cycle": cycle, "worker_id": worker_id, "handler": handler}))  # fmt: skip

    @hookimpl
    def graflow_remote_finished(
        self,
        context: dict[str, str],
        session_id: str,
        task_id: str,
        cycle: int,
        worker_id: str | None,
        duration_s: float,
        error: BaseException | None,
    ) -> None:
        self.calls.append(("finished", {"context": context, "task_id": task_id, "duration_s": duration_s,
                                        "error": error}))  # fmt: skip


@pytest.fixture
def default_plugins(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """``use(*plugins)``: the process-wide host (what run_request and build_parser use) gets only the
    built-ins and these plugins, until the test ends."""
    monkeypatch.setenv("GRAFLOW_LOAD_PLUGINS", "")

    def use(*plugins: object) -> None:
        monkeypatch.setattr(manager, "_default_host", PluginHost(plugins))

    yield use
    manager.reset_default_host()


def ship(task: TaskWrapper, context: dict[str, str]) -> remote.RemoteRequest:
    return remote.RemoteRequest(session_id="s1", task=task, cycle=2, kwargs={}, context=context)


def test_hook_graflow_remote_started(default_plugins: Callable[..., None]) -> None:
    recorder = RemoteRecorder()
    default_plugins(recorder)
    context = {"traceparent": "00-abc"}
    outcome = remote.run_request(ship(TaskWrapper("t", lambda: 5), context), worker_id="w1")
    assert outcome.result == 5
    (started,) = [data for name, data in recorder.calls if name == "started"]
    assert started == {"context": context, "session_id": "s1", "task_id": "t", "cycle": 2, "worker_id": "w1",
                       "handler": "direct"}  # fmt: skip


def test_hook_graflow_remote_finished(default_plugins: Callable[..., None]) -> None:
    recorder = RemoteRecorder()
    default_plugins(recorder)

    def bad() -> None:
        raise KeyError("nope")

    outcome = remote.run_request(ship(TaskWrapper("t", bad), {}), worker_id=None)
    assert isinstance(outcome.error, KeyError)
    started, finished = recorder.calls
    assert finished[0] == "finished" and finished[1]["error"] is outcome.error
    assert finished[1]["context"] is started[1]["context"]  # the same object: plugins key state by it
    assert finished[1]["duration_s"] >= 0


def test_hook_graflow_remote_retrying(default_plugins: Callable[..., None]) -> None:
    calls: list[dict[str, Any]] = []

    class Recorder:
        @staticmethod
        @hookimpl
        def graflow_remote_retrying(
            context: dict[str, str], session_id: str, task_id: str, cycle: int, worker_id: str | None,
            attempt: int, delay_s: float, error: BaseException,
        ) -> None:  # fmt: skip
            calls.append({"context": context, "session_id": session_id, "task_id": task_id, "cycle": cycle,
                          "worker_id": worker_id, "attempt": attempt, "delay_s": delay_s, "error": error})  # fmt: skip

    runs: list[int] = []

    @task(retries=3, retry_delay=0.0)
    def flaky() -> int:
        runs.append(1)
        if len(runs) < 3:
            raise OSError(f"attempt {len(runs)}")
        return 5

    default_plugins(Recorder)
    context = {"traceparent": "00-abc"}
    request = ship(flaky, context)
    outcome = remote.run_request(request, worker_id="w1")
    assert outcome.error is None and outcome.result == 5 and outcome.attempts == 3
    assert [(c["attempt"], str(c["error"])) for c in calls] == [(1, "attempt 1"), (2, "attempt 2")]
    assert all(c["context"] is request.context for c in calls)  # the object remote_started/finished get
    assert {(c["session_id"], c["task_id"], c["cycle"], c["worker_id"], c["delay_s"]) for c in calls} == {
        ("s1", "flaky", 2, "w1", 0.0)
    }


def test_hook_graflow_remote_attempt_started(default_plugins: Callable[..., None]) -> None:
    """The child of a timed attempt (``run_request(..., once=True)``) receives the context that
    ``graflow_remote_context`` gave in the executing process for that attempt."""
    calls: list[dict[str, Any]] = []

    class Carrier:
        @staticmethod
        @hookimpl
        def graflow_remote_context(run_id: str, group_id: str, task_id: str) -> dict[str, str]:
            return {"where": f"run={run_id!r} group={group_id!r} task={task_id}"}

        @staticmethod
        @hookimpl
        def graflow_remote_attempt_started(
            context: dict[str, str], session_id: str, task_id: str, cycle: int, attempt: int
        ) -> None:
            calls.append({"context": context, "session_id": session_id, "task_id": task_id, "cycle": cycle,
                          "attempt": attempt})  # fmt: skip

    default_plugins(Carrier)
    request = ship(TaskWrapper("t", lambda: 5), {"traceparent": "00-submitter"})
    child_request = attrs.evolve(request, attempt=2, context=remote.attempt_context(request))
    assert request.context == {"traceparent": "00-submitter"}  # the request itself is not changed
    assert remote.run_request(child_request, once=True).result == 5
    assert calls == [
        {"context": {"traceparent": "00-submitter", "where": "run='' group='' task=t"}, "session_id": "s1",
         "task_id": "t", "cycle": 2, "attempt": 2}
    ]  # fmt: skip
    assert remote.run_request(ship(TaskWrapper("t", lambda: 5), {}), once=True).result == 5
    assert len(calls) == 1  # no context: not called


def test_a_failing_remote_finished_hook_never_changes_the_outcome(
    default_plugins: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    class Broken:
        @staticmethod
        @hookimpl
        def graflow_remote_finished() -> None:
            raise RuntimeError("observer broke")

    def bad() -> None:
        raise KeyError("own")

    class Log:
        errors: list[tuple[str, dict[str, Any]]] = []

        def error(self, event: str, **fields: Any) -> None:
            self.errors.append((event, fields))

    default_plugins(Broken)
    monkeypatch.setattr(remote, "log", Log())
    outcome = remote.run_request(ship(TaskWrapper("t", lambda: 1), {}))
    assert outcome.error is None and outcome.result == 1  # an observer broke, not the task
    ((event, fields),) = Log.errors
    assert event == "remote_finished_hook_failed" and fields["error"] == "RuntimeError: observer broke"
    failed = remote.run_request(ship(TaskWrapper("t", bad), {}))
    assert isinstance(failed.error, KeyError)  # the task's own error, with the hook's noted on it
    assert any("graflow_remote_finished hook raised" in note for note in failed.error.__notes__)


# --- workers -----------------------------------------------------------------------------------------


class WorkerRecorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    @hookimpl
    def graflow_worker_started(
        self, worker_id: str, worker: TaskWorker, queue: WorkSource, options: dict[str, Any]
    ) -> None:
        self.calls.append(("started", {"worker_id": worker_id, "worker": worker, "queue": queue, "options": options}))

    @hookimpl
    def graflow_worker_task_done(
        self,
        worker_id: str,
        task_id: str,
        cycle: int,
        handler: str | None,
        duration_s: float,
        error: BaseException | None,
    ) -> None:
        self.calls.append(("task_done", {"task_id": task_id, "cycle": cycle, "handler": handler, "error": error,
                                         "duration_s": duration_s}))  # fmt: skip

    @hookimpl
    def graflow_worker_stopped(self, worker_id: str, worker: TaskWorker) -> None:
        self.calls.append(("stopped", {"worker_id": worker_id, "worker": worker}))


def item(task: TaskWrapper, item_id: str) -> WorkItem:
    payload = remote.dumps_request(ship(task, {}))
    return WorkItem(item_id, task.task_id, 2, payload)


def run_worker(items: list[WorkItem], recorder: object, options: dict[str, Any] | None = None) -> MemorySource:
    source = CountingMemorySource(items)
    worker = TaskWorker(source, worker_id="w7", block_s=0.05, plugins=[recorder], options=options)
    thread = threading.Thread(target=worker.start)
    thread.start()
    with source.cond:
        assert source.cond.wait_for(lambda: len(source.completed) == len(items), timeout=60)
    worker.stop()
    thread.join(timeout=60)
    assert not thread.is_alive()
    return source


def test_hook_graflow_worker_started() -> None:
    recorder = WorkerRecorder()
    source = run_worker([item(TaskWrapper("t", lambda: 1), "1")], recorder, options={"metrics_port": 1})
    name, data = recorder.calls[0]
    assert name == "started" and data["worker_id"] == "w7" and data["queue"] is source
    assert data["options"] == {"metrics_port": 1} and data["worker"].tasks_running == 0


def test_a_worker_plugin_can_refuse_its_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from graflow.worker import main

    class Refuses:
        @staticmethod
        @hookimpl
        def graflow_worker_started(options: dict[str, Any]) -> None:
            raise GraflowError(f"bad setting {options['queue']!r}")

    worker = TaskWorker(CountingMemorySource([]), plugins=[Refuses], options={"queue": "q"})
    with pytest.raises(GraflowError, match="bad setting 'q'"):
        worker.start()
    monkeypatch.setattr(main, "configure_logging", lambda level, fmt: None)  # leave structlog as tests have it
    monkeypatch.setattr(main, "build_worker", lambda args: TaskWorker(CountingMemorySource([]), plugins=[Refuses],
                                                                       options=vars(args)))  # fmt: skip
    assert main.main(["--queue", "x"]) == 2


def test_hook_graflow_worker_task_done() -> None:
    recorder = WorkerRecorder()

    def bad() -> None:
        raise OSError("disk")

    run_worker([item(TaskWrapper("ok", lambda: 1), "1"), item(TaskWrapper("bad", bad), "2")], recorder)
    done = {data["task_id"]: data for name, data in recorder.calls if name == "task_done"}
    assert done["ok"]["error"] is None and done["ok"]["handler"] == "direct" and done["ok"]["cycle"] == 2
    assert isinstance(done["bad"]["error"], OSError) and done["bad"]["duration_s"] >= 0
    unreadable = WorkerRecorder()
    run_worker([WorkItem("3", "junk", 1, b"not a payload")], unreadable)
    (junk,) = [data for name, data in unreadable.calls if name == "task_done"]
    assert junk["handler"] is None and junk["error"] is not None


def test_hook_graflow_worker_stopped() -> None:
    recorder = WorkerRecorder()
    run_worker([item(TaskWrapper("t", lambda: 1), "1")], recorder)
    assert [name for name, _ in recorder.calls] == ["started", "task_done", "stopped"]
    assert recorder.calls[-1][1]["worker_id"] == "w7"


def test_hook_graflow_worker_add_options(default_plugins: Callable[..., None], monkeypatch: pytest.MonkeyPatch) -> None:
    class Adds:
        @staticmethod
        @hookimpl
        def graflow_worker_add_options(parser: argparse.ArgumentParser) -> None:
            parser.add_argument("--flavour", default="plain")

    default_plugins(Adds)
    assert build_parser().parse_args(["--flavour", "hot"]).flavour == "hot"
    assert build_parser().parse_args([]).flavour == "plain"
