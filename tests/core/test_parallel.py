"""Parallel groups: coordination backends, results and channel writes reaching the run, the barrier."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from graflow import (
    CoordinationBackend,
    ParallelGroupError,
    TaskExecutionContext,
    TaskWrapper,
    WorkflowEngine,
    hookimpl,
    task,
    workflow,
)
from graflow.exceptions import GraflowError, UnknownNameError, WorkflowCancelledError
from graflow.plugins.manager import PluginHost

IN_PROCESS = [CoordinationBackend.DIRECT, CoordinationBackend.THREADING]


def counting_member(task_id: str) -> TaskWrapper:
    def body(ctx: TaskExecutionContext) -> str:
        ctx.get_channel().increment("counter")
        ctx.get_channel().append("members", task_id)
        ctx.get_channel().set(f"wrote_{task_id}", task_id.upper())
        return f"result of {task_id}"

    return TaskWrapper(task_id, body, inject_context=True)


def build_counting_workflow(backend: Any, max_workers: int = 4) -> Any:
    with workflow("counting") as wf:
        members = [counting_member(f"m{i}") for i in range(4)]
        group = members[0] | members[1] | members[2] | members[3]
        group = group.with_execution(backend=backend, max_workers=max_workers).set_group_name("four")

        @task(inject_context=True)
        def check(ctx: TaskExecutionContext, four: dict[str, str]) -> dict[str, Any]:
            channel = ctx.get_channel()
            return {
                "group": four,
                "counter": channel.get("counter"),
                "members": sorted(channel.get("members")),
                "written": {k: channel.get(k) for k in sorted(channel.keys()) if k.startswith("wrote_")},
            }

        group >> check
    return wf


def assert_counting_outcome(outcome: dict[str, Any], ctx: Any) -> None:
    ids = [f"m{i}" for i in range(4)]
    assert outcome["counter"] == 4
    assert outcome["members"] == ids
    assert outcome["group"] == {i: f"result of {i}" for i in ids}
    assert outcome["written"] == {f"wrote_{i}": i.upper() for i in ids}
    for i in ids:
        assert ctx.get_result(i) == f"result of {i}"


@pytest.mark.parametrize("backend", IN_PROCESS)
def test_results_and_channel_writes_reach_the_run(backend: CoordinationBackend) -> None:
    outcome, ctx = build_counting_workflow(backend).execute(ret_context=True)
    assert_counting_outcome(outcome, ctx)


def test_multiprocessing_results_and_channel_writes_reach_the_parent() -> None:
    outcome, ctx = build_counting_workflow(CoordinationBackend.MULTIPROCESSING, max_workers=2).execute(ret_context=True)
    assert_counting_outcome(outcome, ctx)


def test_multiprocessing_members_run_in_other_processes() -> None:
    with workflow("pids") as wf:
        group = TaskWrapper("p1", os.getpid) | TaskWrapper("p2", os.getpid)
        group.with_execution(backend=CoordinationBackend.MULTIPROCESSING, max_workers=2)
    result = wf.execute()
    assert set(result) == {"p1", "p2"}
    assert os.getpid() not in result.values()


def test_multiprocessing_member_iterations_and_dynamic_tasks_reach_the_run() -> None:
    def looper(ctx: TaskExecutionContext, n: int = 0) -> int:
        ctx.get_channel().append("trace", n)
        if n < 2:
            ctx.next_iteration(n + 1)
        else:
            ctx.next_task(TaskWrapper("spawned", lambda: "spawned ran"))
        return n

    with workflow("mp_loop") as wf:
        group = TaskWrapper("looper", looper, inject_context=True) | TaskWrapper("other", lambda: 1)
        group.with_execution(backend=CoordinationBackend.MULTIPROCESSING, max_workers=2) >> TaskWrapper(
            "after", lambda: "after"
        )
    result, ctx = wf.execute(ret_context=True)
    assert result in ("after", "spawned ran")
    assert ctx.get_result("looper") == 2 and ctx.cycle_counts["looper"] == 3
    assert ctx.get_channel().get("trace") == [0, 1, 2]
    assert ctx.get_result("spawned") == "spawned ran" and ctx.get_result("after") == "after"


def test_multiprocessing_cannot_ship_a_nested_group() -> None:
    with workflow("nested_mp") as wf:
        inner = (TaskWrapper("i1", lambda: 1) | TaskWrapper("i2", lambda: 2)).set_group_name("inner")
        (TaskWrapper("o", lambda: 0) | inner).with_execution(backend="multiprocessing", max_workers=1)
    with pytest.raises(Exception, match="only tasks can run in another process"):
        wf.execute()


def test_threading_members_run_concurrently_and_the_group_is_a_barrier() -> None:
    """``slow`` waits for ``fast`` to start: only possible when both run at once; ``after`` sees both done."""
    fast_started = threading.Event()
    finished: list[str] = []

    def fast() -> str:
        fast_started.set()
        finished.append("fast")
        return "fast"

    def slow() -> str:
        assert fast_started.wait(10), "members did not run concurrently"
        finished.append("slow")
        return "slow"

    with workflow("barrier") as wf:
        group = (TaskWrapper("slow", slow) | TaskWrapper("fast", fast)).with_execution(
            backend=CoordinationBackend.THREADING, max_workers=2
        )

        @task
        def after() -> list[str]:
            return sorted(finished)

        group >> after
    assert wf.execute() == ["fast", "slow"]


@pytest.mark.parametrize("backend", [*IN_PROCESS, "multiprocessing"])
def test_successors_start_after_every_member_finished(backend: str) -> None:
    with workflow("bsp") as wf:
        members = [TaskWrapper(f"w{i}", lambda i=i: i * i) for i in range(3)]
        group = (members[0] | members[1] | members[2]).with_execution(backend=backend, max_workers=2)

        @task(inject_context=True)
        def join(ctx: TaskExecutionContext) -> list[int]:
            return [ctx.get_result(f"w{i}") for i in range(3)]

        group >> join
    assert wf.execute() == [0, 1, 4]


def test_threading_respects_max_workers() -> None:
    lock = threading.Lock()
    state = {"running": 0, "peak": 0}

    def body() -> None:
        with lock:
            state["running"] += 1
            state["peak"] = max(state["peak"], state["running"])
        threading.Event().wait(0.01)
        with lock:
            state["running"] -= 1

    with workflow("workers") as wf:
        tasks = [TaskWrapper(f"t{i}", body) for i in range(6)]
        group = tasks[0]
        for t in tasks[1:]:
            group = group | t
        group.with_execution(backend=CoordinationBackend.THREADING, max_workers=2)  # type: ignore[union-attr]
    wf.execute()
    assert 1 <= state["peak"] <= 2


def test_max_workers_must_be_positive() -> None:
    with workflow("bad_workers"):
        group = TaskWrapper("a", lambda: 1) | TaskWrapper("b", lambda: 2)
        with pytest.raises(ValueError, match="max_workers"):
            group.with_execution(max_workers=0)


def test_direct_backend_runs_members_in_order_in_the_calling_thread() -> None:
    seen: list[tuple[str, int]] = []
    with workflow("direct") as wf:
        tasks = [TaskWrapper(n, lambda n=n: seen.append((n, threading.get_ident()))) for n in "abc"]
        (tasks[0] | tasks[1] | tasks[2]).with_execution(backend=CoordinationBackend.DIRECT)
    wf.execute()
    assert [n for n, _ in seen] == ["a", "b", "c"]
    assert {ident for _, ident in seen} == {threading.get_ident()}


def test_backend_by_plain_name() -> None:
    with workflow("by_name") as wf:
        group = (TaskWrapper("a", lambda: 1) | TaskWrapper("b", lambda: 2)).with_execution("direct")
    assert group.backend == "direct"
    assert wf.execute() == {"a": 1, "b": 2}


@pytest.mark.parametrize("backend", IN_PROCESS)
def test_member_next_iteration_runs_inside_the_group(backend: CoordinationBackend) -> None:
    with workflow("member_loop") as wf:

        @task(inject_context=True)
        def looper(ctx: TaskExecutionContext, n: int = 0) -> int:
            ctx.get_channel().append("trace", f"loop{n}")
            if n < 3:
                ctx.next_iteration(n + 1)
            return n

        @task(inject_context=True)
        def other(ctx: TaskExecutionContext) -> str:
            ctx.get_channel().append("trace", "other")
            return "other"

        @task(inject_context=True)
        def after(ctx: TaskExecutionContext) -> list[str]:
            return list(ctx.get_channel().get("trace"))

        (looper | other).with_execution(backend=backend).set_group_name("g") >> after
    trace, ctx = wf.execute(ret_context=True)
    assert [t for t in trace if t.startswith("loop")] == ["loop0", "loop1", "loop2", "loop3"]
    assert "other" in trace
    assert ctx.get_result("g") == {"looper": 3, "other": "other"}
    assert ctx.cycle_counts["looper"] == 4


@pytest.mark.parametrize("backend", IN_PROCESS)
def test_member_next_task_runs_after_the_group(backend: CoordinationBackend) -> None:
    log: list[str] = []
    with workflow("member_dyn") as wf:

        @task(inject_context=True)
        def spawner(ctx: TaskExecutionContext) -> None:
            log.append("spawner")
            ctx.next_task(TaskWrapper("spawned", lambda: log.append("spawned")))

        quiet = TaskWrapper("quiet", lambda: log.append("quiet"))
        (spawner | quiet).with_execution(backend=backend)
    _, ctx = wf.execute(ret_context=True)
    assert log[-1] == "spawned"
    assert sorted(log[:2]) == ["quiet", "spawner"]
    assert "spawned" in ctx.graph


@pytest.mark.parametrize("backend", IN_PROCESS)
def test_nested_groups_run_every_member_once(backend: CoordinationBackend) -> None:
    with workflow("nested") as wf:
        inner = (counting_member("i1") | counting_member("i2")).set_group_name("inner")
        outer = (counting_member("o1") | inner).with_execution(backend=backend).set_group_name("outer")

        @task(inject_context=True)
        def total(ctx: TaskExecutionContext) -> int:
            return ctx.get_channel().get("counter")

        outer >> total
    assert wf.execute() == 3


def test_unknown_coordination_backend_lists_the_installed_ones() -> None:
    with workflow("unknown") as wf:
        (TaskWrapper("a", lambda: 1) | TaskWrapper("b", lambda: 2)).with_execution(backend="carrier-pigeon")
    with pytest.raises(UnknownNameError, match="carrier-pigeon") as info:
        wf.execute()
    assert {"direct", "threading", "multiprocessing"} <= set(info.value.available)


def test_redis_backend_without_graflow_redis_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAFLOW_LOAD_PLUGINS", "")  # as if only graflow-core were installed
    engine = WorkflowEngine()
    engine.host = PluginHost()
    with workflow("redis") as wf:
        (TaskWrapper("a", lambda: 1) | TaskWrapper("b", lambda: 2)).with_execution(backend=CoordinationBackend.REDIS)
    with pytest.raises(UnknownNameError, match="pip install graflow-redis"):
        wf.execute(engine=engine)


@pytest.mark.timeout(8)
def test_group_timeout_is_reported_without_waiting_for_the_stuck_member() -> None:
    release = threading.Event()
    with workflow("timeout") as wf:
        (TaskWrapper("stuck", lambda: release.wait(30)) | TaskWrapper("ok", lambda: 1)).with_execution(
            backend=CoordinationBackend.THREADING, group_timeout=0.05
        )
    try:
        with pytest.raises(GraflowError, match="timed out"):
            wf.execute()
    finally:
        release.set()
        for thread in threading.enumerate():  # let the released member finish inside this test
            if thread.name == "graflow-group":
                thread.join(5)


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_multiprocessing_group_timeout_terminates_the_stuck_member(tmp_path: Path) -> None:
    """The timeout leaves generous room for spawning the pool on a loaded machine: what is checked
    is that the stuck member is named and its process is gone, not how fast that happened."""
    pid_file = str(tmp_path / "stuck.pid")

    def stuck_forever() -> None:  # local, so it travels by value to the spawned process
        with open(pid_file, "w") as f:
            f.write(str(os.getpid()))
        while True:
            time.sleep(0.05)

    with workflow("mp_timeout") as wf:
        (TaskWrapper("stuck", stuck_forever) | TaskWrapper("ok", lambda: 1)).with_execution(
            backend=CoordinationBackend.MULTIPROCESSING, max_workers=2, group_timeout=4
        )
    with pytest.raises(GraflowError, match=r"timed out after 4s with 1 member runs unfinished: \['stuck'\]"):
        wf.execute()
    pid = int(Path(pid_file).read_text())
    with pytest.raises(ProcessLookupError):  # terminated and reaped, not left running
        os.kill(pid, 0)


@pytest.mark.timeout(60)
def test_a_program_whose_multiprocessing_group_timed_out_still_exits(tmp_path: Path) -> None:
    """The interpreter joins every pool process at exit: a stuck member left alive would hang it."""
    script = tmp_path / "stuck_group.py"
    script.write_text(
        textwrap.dedent(
            """
            import time
            from graflow import CoordinationBackend, TaskWrapper, workflow
            from graflow.exceptions import TaskTimeoutError

            def stuck():
                while True:
                    time.sleep(0.05)

            if __name__ == "__main__":
                with workflow("stuck") as wf:
                    (TaskWrapper("stuck", stuck) | TaskWrapper("ok", lambda: 1)).with_execution(
                        backend=CoordinationBackend.MULTIPROCESSING, max_workers=2, group_timeout=1.0
                    )
                try:
                    wf.execute()
                except TaskTimeoutError:
                    print("timed out")
            """
        )
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=45)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("timed out")


@pytest.mark.parametrize("backend", IN_PROCESS)
def test_member_terminate_ends_the_run_after_the_barrier(backend: CoordinationBackend) -> None:
    log: list[str] = []

    def stopper(ctx: TaskExecutionContext) -> None:
        ctx.terminate_workflow("enough")
        log.append("stopper")

    with workflow("member_terminate") as wf:
        group = TaskWrapper("stopper", stopper, inject_context=True) | TaskWrapper("other", lambda: log.append("other"))
        group.with_execution(backend=backend) >> TaskWrapper("after", lambda: log.append("after"))
    wf.execute()
    assert sorted(log) == ["other", "stopper"]


@pytest.mark.parametrize("backend", IN_PROCESS)
def test_member_cancel_fails_the_run_after_the_barrier(backend: CoordinationBackend) -> None:
    log: list[str] = []

    def canceller(ctx: TaskExecutionContext) -> None:
        ctx.cancel_workflow("bad batch")

    with workflow("member_cancel") as wf:
        group = TaskWrapper("canceller", canceller, inject_context=True) | TaskWrapper(
            "other", lambda: log.append("other")
        )
        group.with_execution(backend=backend) >> TaskWrapper("after", lambda: log.append("after"))
    with pytest.raises(WorkflowCancelledError, match="bad batch") as info:
        wf.execute()
    assert log == ["other"]
    assert info.value.task_id == "canceller"  # the member that cancelled, not its group
    assert "task 'canceller'" in str(info.value)


def test_direct_group_timeout_fails_the_group_between_members() -> None:
    """DIRECT runs a member inside collect(): the deadline is checked between members."""
    with workflow("direct_timeout") as wf:
        members = [TaskWrapper(name, lambda: time.sleep(0.3)) for name in ("a", "b", "c")]
        (members[0] | members[1] | members[2]).with_execution(backend=CoordinationBackend.DIRECT, group_timeout=0.4)
    with pytest.raises(GraflowError, match=r"timed out after 0.4s with 1 member runs unfinished: \['c'\]"):
        wf.execute()


@pytest.mark.parametrize("backend", ["threading", "multiprocessing"])
def test_member_routes_to_an_existing_task_of_the_workflow(backend: str) -> None:
    """A member's next_task(task) names a static task; from a process pool it comes back as a copy,
    which must resolve to the workflow's own task, not count as a second task with its id."""

    def alert() -> str:
        return "alert sent"

    def check(ctx: TaskExecutionContext) -> str:
        ctx.next_task(alert_task)
        return "bad"

    with workflow(f"route_{backend}") as wf:
        alert_task = TaskWrapper("alert", alert)
        group = TaskWrapper("check", check, inject_context=True) | TaskWrapper("other", lambda: "ok")
        group.with_execution(backend=backend, max_workers=2).set_group_name("checks")
        wf.add(alert_task)
    _, ctx = wf.execute(start_node="checks", ret_context=True)
    assert ctx.results["alert"] == "alert sent"
    assert ctx.graph.nodes["alert"] is not None and "alert" not in ctx.graph.dynamic


@pytest.mark.parametrize("backend", IN_PROCESS)
def test_a_dynamic_named_group_recreated_each_round_runs_its_new_members(backend: CoordinationBackend) -> None:
    @task(inject_context=True)
    def controller(ctx: TaskExecutionContext, round_no: int = 0) -> int:
        if round_no >= 2:
            return round_no
        shards = [TaskWrapper(f"shard_{round_no}_{i}", (lambda i=i, r=round_no: r * 10 + i)) for i in range(2)]
        ctx.next_task((shards[0] | shards[1]).set_group_name("fanout").with_execution(backend=backend))
        ctx.next_iteration(round_no + 1)
        return round_no

    with workflow("recreated_group") as wf:
        wf.add(controller)
    _, ctx = wf.execute(ret_context=True)
    assert ctx.results["fanout"] == {"shard_1_0": 10, "shard_1_1": 11}
    assert {"shard_0_0", "shard_1_1"} <= set(ctx.graph.nodes)


@pytest.mark.timeout(20)
def test_a_failing_task_failed_hook_neither_hangs_a_threading_group_nor_hides_the_error() -> None:
    class BrokenMetrics:
        @hookimpl
        def graflow_task_failed(self, task_id: str) -> None:
            raise RuntimeError("metrics backend down")

    def bad() -> None:
        raise ValueError("boom")

    with workflow("broken_hook") as wf:
        (TaskWrapper("bad", bad) | TaskWrapper("good", lambda: 1)).with_execution(backend=CoordinationBackend.THREADING)
    with pytest.raises(ParallelGroupError, match=r"bad \(ValueError: boom\)") as info:
        wf.execute(engine=WorkflowEngine(plugins=[BrokenMetrics()]))
    cause = info.value.__cause__
    assert isinstance(cause, ValueError)
    assert any("metrics backend down" in note for note in getattr(cause, "__notes__", []))


def test_a_pool_member_whose_process_dies_reaches_the_failure_hook() -> None:
    """The outcome of a dead pool process is made in the run's process; it used to look like an
    in-process member's (no worker id), so graflow_task_failed was never called for it."""
    from graflow import WorkflowEngine, hookimpl

    failed: list[tuple[str, str]] = []

    class Watcher:
        @hookimpl
        def graflow_task_failed(self, task_id: str, error: BaseException, worker_id: str | None) -> None:
            failed.append((task_id, type(error).__name__))

    def crash() -> None:
        os._exit(3)

    with workflow("pool_death") as wf:
        (TaskWrapper("ok", lambda: 1) | TaskWrapper("crash", crash)).with_execution(
            backend=CoordinationBackend.MULTIPROCESSING, max_workers=2
        ).with_policy("best_effort")
    wf.execute(engine=WorkflowEngine(plugins=[Watcher()]))
    assert [task_id for task_id, _ in failed] == ["crash"]
