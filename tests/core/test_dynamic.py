"""Dynamic graphs: next_task, goto, next_iteration, loop limits, terminate and cancel."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from graflow import ExecutionContext, TaskExecutionContext, TaskWrapper, WorkflowEngine, task, workflow
from graflow.core.workflow import Workflow
from graflow.exceptions import (
    ExecutionError,
    MaxCyclesExceededError,
    MaxStepsExceededError,
    TaskExecutionError,
    WorkflowCancelledError,
)


def recorder(log: list[str], task_id: str) -> TaskWrapper:
    def run() -> str:
        log.append(task_id)
        return task_id

    return TaskWrapper(task_id, run)


# --- next_task -------------------------------------------------------------------------------------


def test_next_task_adds_a_task_that_runs_after_the_current_one() -> None:
    log: list[str] = []
    with workflow("dyn") as wf:

        @task(inject_context=True)
        def decide(ctx: TaskExecutionContext) -> None:
            log.append("decide")
            ctx.next_task(recorder(log, "cleanup"))

    _, ctx = wf.execute(ret_context=True)
    assert log == ["decide", "cleanup"]
    assert ctx.get_result("cleanup") == "cleanup"


def test_next_task_keeps_the_static_successors() -> None:
    log: list[str] = []
    with workflow("dyn") as wf:

        @task(inject_context=True)
        def decide(ctx: TaskExecutionContext) -> None:
            log.append("decide")
            ctx.next_task(recorder(log, "extra"))

        decide >> recorder(log, "static_next")
    wf.execute()
    assert log[0] == "decide"
    assert sorted(log[1:]) == ["extra", "static_next"]


def test_dynamic_task_receives_the_parent_result_by_parameter_name() -> None:
    with workflow("dyn") as wf:

        @task(inject_context=True)
        def parent(ctx: TaskExecutionContext) -> int:
            ctx.next_task(TaskWrapper("child", lambda parent: parent * 3))
            return 7

    assert wf.execute() == 21


def test_next_task_goto_skips_the_static_successors() -> None:
    log: list[str] = []
    with workflow("goto") as wf:

        @task(inject_context=True)
        def decide(ctx: TaskExecutionContext) -> None:
            log.append("decide")
            ctx.next_task(recorder(log, "elsewhere"), goto=True)

        decide >> recorder(log, "skipped")
    wf.execute()
    assert log == ["decide", "elsewhere"]


def test_next_task_to_a_static_successor_runs_it_once() -> None:
    log: list[str] = []
    with workflow("existing") as wf:
        b = recorder(log, "b")

        @task(inject_context=True)
        def a(ctx: TaskExecutionContext) -> None:
            log.append("a")
            ctx.next_task(b)

        a >> b
    wf.execute()
    assert log == ["a", "b"]


def test_next_task_to_a_static_successor_still_waits_for_its_other_predecessors() -> None:
    log: list[str] = []
    with workflow("join") as wf:
        join = recorder(log, "join")

        @task(inject_context=True)
        def a(ctx: TaskExecutionContext) -> None:
            log.append("a")
            ctx.next_task(join)

        a >> join
        recorder(log, "b") >> recorder(log, "b2") >> join
    wf.execute()
    assert log.count("join") == 1
    assert log[-1] == "join"


def test_next_task_to_another_static_task_runs_it_and_keeps_the_successors() -> None:
    log: list[str] = []
    with workflow("existing") as wf:
        target = recorder(log, "target")

        @task(inject_context=True)
        def a(ctx: TaskExecutionContext) -> None:
            log.append("a")
            ctx.next_task(target)

        a >> recorder(log, "normal_successor")
        target >> recorder(log, "after_target")
    wf.execute(start_node="a")
    assert log == ["a", "target", "normal_successor", "after_target"]


def test_next_task_goto_to_a_static_task_jumps_there() -> None:
    log: list[str] = []
    with workflow("jump") as wf:
        target = recorder(log, "target")

        @task(inject_context=True)
        def a(ctx: TaskExecutionContext) -> None:
            log.append("a")
            ctx.next_task(target, goto=True)

        a >> recorder(log, "normal_successor")
        target >> recorder(log, "after_target")
    wf.execute(start_node="a")
    assert log == ["a", "target", "after_target"]


def test_next_task_accepts_a_task_id() -> None:
    log: list[str] = []
    with workflow("by_id") as wf:
        recorder(log, "target")

        @task(inject_context=True)
        def a(ctx: TaskExecutionContext) -> None:
            log.append("a")
            ctx.next_task("target")

    wf.execute(start_node="a")
    assert log == ["a", "target"]


def test_next_task_rejects_non_tasks() -> None:
    with workflow("bad") as wf:

        @task(inject_context=True)
        def a(ctx: TaskExecutionContext) -> None:
            ctx.next_task(42)  # type: ignore[arg-type]

    with pytest.raises(TaskExecutionError) as info:
        wf.execute()
    assert isinstance(info.value.original, TypeError)


def test_goto_back_to_an_earlier_task_loops_until_it_stops() -> None:
    log: list[str] = []
    with workflow("goto_loop") as wf:
        a = recorder(log, "a")

        @task(inject_context=True)
        def b(ctx: TaskExecutionContext) -> None:
            log.append("b")
            if ctx.get_channel().increment("rounds") < 3:
                ctx.next_task(a, goto=True)

        a >> b >> recorder(log, "c")
    _, ctx = wf.execute(ret_context=True)
    assert log == ["a", "b", "a", "b", "a", "b", "c"]
    assert ctx.cycle_counts["a"] == 3


def test_goto_to_itself_loops_and_then_releases_successors_once() -> None:
    log: list[str] = []
    with workflow("self_goto") as wf:

        @task(inject_context=True)
        def poll(ctx: TaskExecutionContext) -> None:
            log.append("poll")
            if ctx.cycle_count < 4:
                ctx.next_task(poll, goto=True)

        poll >> recorder(log, "done")
    wf.execute()
    assert log == ["poll"] * 4 + ["done"]


def test_goto_loop_creating_a_task_with_the_same_id_each_round() -> None:
    log: list[str] = []

    def again_body(ctx: TaskExecutionContext) -> None:
        log.append("again")
        ctx.next_task(step, goto=True)

    with workflow("recreate") as wf:

        @task(inject_context=True)
        def step(ctx: TaskExecutionContext) -> None:
            log.append("step")
            if ctx.cycle_count < 3:
                ctx.next_task(TaskWrapper("again", again_body, inject_context=True), goto=True)

        step >> recorder(log, "end")

    _, ctx = wf.execute(ret_context=True)
    assert log == ["step", "again", "step", "again", "step", "end"]
    assert len(ctx.graph) == 3  # step, end and one "again", not one per round


def test_dynamic_group_runs_its_members() -> None:
    with workflow("dyn_group") as wf:

        @task(inject_context=True)
        def spawn(ctx: TaskExecutionContext) -> None:
            group = TaskWrapper("p", lambda: 1) | TaskWrapper("q", lambda: 2)
            ctx.next_task(group.set_group_name("pq"))

    _, ctx = wf.execute(ret_context=True)
    assert ctx.get_result("pq") == {"p": 1, "q": 2}


# --- context.graph ---------------------------------------------------------------------------------


def test_context_graph_shows_dynamic_tasks_while_running() -> None:
    seen: dict[str, Any] = {}
    with workflow("introspect") as wf:

        @task(inject_context=True)
        def first(ctx: TaskExecutionContext) -> None:
            ctx.next_task(TaskWrapper("grown", lambda: None))

        @task(inject_context=True)
        def second(ctx: TaskExecutionContext) -> None:
            seen["nodes"] = set(ctx.graph.nodes)
            seen["edges"] = list(ctx.graph.edges())

        first >> second
    _, ctx = wf.execute(ret_context=True)
    assert {"first", "second", "grown"} <= seen["nodes"]
    assert ("first", "grown") in seen["edges"]
    assert "grown" in ctx.graph.nodes
    assert "grown" in ctx.graph.dynamic


def test_dynamic_tasks_do_not_change_the_next_run() -> None:
    log: list[str] = []
    with workflow("rerun") as wf:

        @task(inject_context=True)
        def first(ctx: TaskExecutionContext) -> None:
            log.append("first")
            if ctx.get_channel().get("add", True):
                ctx.next_task(recorder(log, "grown"))

    wf.execute()
    wf.execute()
    assert log == ["first", "grown", "first", "grown"]


# --- next_iteration --------------------------------------------------------------------------------


def test_next_iteration_passes_data_to_the_non_context_parameter() -> None:
    seen: list[Any] = []
    with workflow("iterate") as wf:

        @task(inject_context=True)
        def optimize(context: TaskExecutionContext, params: dict[str, int] | None = None) -> dict[str, int]:
            seen.append(None if params is None else dict(params))
            params = params or {"step": 0}
            if params["step"] < 3:
                context.next_iteration({"step": params["step"] + 1})
            return params

    assert wf.execute() == {"step": 3}
    assert seen == [None, {"step": 1}, {"step": 2}, {"step": 3}]


def test_next_iteration_with_none_passes_none() -> None:
    seen: list[Any] = []
    with workflow("none_data") as wf:

        @task(inject_context=True)
        def loop(ctx: TaskExecutionContext, value: Any = "default") -> None:
            seen.append(value)
            if ctx.cycle_count == 1:
                ctx.next_iteration(None)

    wf.execute()
    assert seen == ["default", None]


def test_next_iteration_without_data_reruns_with_defaults() -> None:
    seen: list[Any] = []
    with workflow("no_data") as wf:

        @task(inject_context=True)
        def loop(ctx: TaskExecutionContext, value: int = 5) -> None:
            seen.append((ctx.cycle_count, value))
            if ctx.cycle_count < 3:
                ctx.next_iteration()

    wf.execute()
    assert seen == [(1, 5), (2, 5), (3, 5)]


def test_loop_successor_runs_once_after_the_last_iteration() -> None:
    log: list[str] = []
    with workflow("loop_then_after") as wf:

        @task(inject_context=True)
        def loop(ctx: TaskExecutionContext, n: int = 0) -> int:
            log.append(f"loop{n}")
            if n < 3:
                ctx.next_iteration(n + 1)
            return n

        @task
        def after(loop: int) -> str:
            log.append("after")
            return f"after {loop}"

        loop >> after
    assert wf.execute() == "after 3"
    assert log == ["loop0", "loop1", "loop2", "loop3", "after"]


def test_loop_inside_a_diamond_holds_the_join() -> None:
    log: list[str] = []
    with workflow("loop_diamond") as wf:
        start, quick, join = recorder(log, "start"), recorder(log, "quick"), recorder(log, "join")

        @task(inject_context=True)
        def slow(ctx: TaskExecutionContext) -> None:
            log.append("slow")
            if ctx.cycle_count < 3:
                ctx.next_iteration()

        start >> quick >> join
        start >> slow >> join
    wf.execute()
    assert log.count("join") == 1 and log[-1] == "join"
    assert log.count("slow") == 3


def test_iteration_and_dynamic_task_together() -> None:
    log: list[str] = []
    with workflow("both") as wf:

        @task(inject_context=True)
        def loop(ctx: TaskExecutionContext) -> None:
            log.append("loop")
            if ctx.cycle_count < 3:
                ctx.next_task(recorder(log, "side"))
                ctx.next_iteration()

        loop >> recorder(log, "after")
    wf.execute()
    assert log == ["loop", "side", "loop", "side", "loop", "after"]


def _scenario(log: list[str]) -> Callable[[], None]:
    """Builds tasks for the inside/outside comparison."""

    @task(inject_context=True)
    def head(ctx: TaskExecutionContext, n: int = 0) -> None:
        log.append(f"head{n}")
        if n < 2:
            ctx.next_task(recorder(log, f"dyn{n}"))
            ctx.next_iteration(n + 1)
        else:
            ctx.next_task(TaskWrapper("goto_target", lambda: log.append("goto")), goto=True)

    def wire() -> None:
        head >> recorder(log, "skipped_by_goto")
        (recorder(log, "p1") | recorder(log, "p2")).with_execution("direct").set_group_name("g") >> recorder(
            log, "tail"
        )

    return wire


@pytest.mark.parametrize("where", ["inside", "outside"])
def test_same_semantics_inside_and_outside_the_with_block(where: str) -> None:
    log: list[str] = []
    wire = _scenario(log)
    wf: Workflow
    with workflow("where") as wf:
        wire()
        if where == "inside":
            _, ctx = wf.execute(ret_context=True)
    if where == "outside":
        _, ctx = wf.execute(ret_context=True)
    # FIFO from the two roots: head's iterations interleave with the group, and the same way both times
    assert log == ["head0", "p1", "p2", "dyn0", "head1", "tail", "dyn1", "head2", "goto"]
    assert "skipped_by_goto" not in log
    assert log.index("head1") > log.index("head0") and log.index("head2") > log.index("head1")
    assert "goto_target" in ctx.graph and "goto_target" not in wf.graph
    assert set(wf.graph.nodes) == {"head", "skipped_by_goto", "p1", "p2", "g", "tail"}


# --- limits ----------------------------------------------------------------------------------------


def test_max_cycles_stops_a_runaway_iteration_naming_the_task() -> None:
    with workflow("cycles") as wf:

        @task(inject_context=True, max_cycles=5)
        def forever(ctx: TaskExecutionContext) -> None:
            ctx.next_iteration()

    with pytest.raises(MaxCyclesExceededError, match="'forever'") as info:
        wf.execute()
    assert info.value.max_cycles == 5
    assert wf.last_context is not None and wf.last_context.cycle_counts["forever"] == 5


def test_config_max_cycles_applies_to_every_task() -> None:
    with workflow("cycles_cfg") as wf:

        @task(inject_context=True)
        def forever(ctx: TaskExecutionContext) -> None:
            ctx.next_iteration()

    with pytest.raises(MaxCyclesExceededError, match="'forever'"):
        wf.execute(config={"max_cycles": 10})


def test_max_cycles_also_bounds_goto_loops() -> None:
    with workflow("goto_cycles") as wf:

        @task(inject_context=True, max_cycles=3)
        def again(ctx: TaskExecutionContext) -> None:
            ctx.next_task(again, goto=True)

    with pytest.raises(MaxCyclesExceededError):
        wf.execute()


def test_max_steps_stops_a_runaway_run() -> None:
    with workflow("steps") as wf:

        @task(inject_context=True)
        def forever(ctx: TaskExecutionContext) -> None:
            ctx.next_iteration()

    with pytest.raises(MaxStepsExceededError, match="max_steps=50") as info:
        wf.execute(max_steps=50)
    assert info.value.last_task == "forever"
    assert isinstance(info.value, ExecutionError)


def test_max_steps_from_the_low_level_api() -> None:
    with workflow("steps_ll") as wf:

        @task(inject_context=True)
        def forever(ctx: TaskExecutionContext) -> None:
            ctx.next_iteration()

    context = ExecutionContext.create(wf.graph, "forever", max_steps=7)
    with pytest.raises(MaxStepsExceededError):
        WorkflowEngine().execute(context)
    assert context.steps == 7


def test_default_limits_let_a_long_loop_finish() -> None:
    with workflow("long") as wf:

        @task(inject_context=True)
        def count(ctx: TaskExecutionContext, n: int = 0) -> int:
            if n < 20_000:
                ctx.next_iteration(n + 1)
            return n

    assert wf.execute() == 20_000


def _sizes(obj: Any) -> dict[str, int]:
    return {k: len(v) for k, v in vars(obj).items() if isinstance(v, list | dict | set | tuple)}


def test_a_long_loop_keeps_no_per_iteration_records() -> None:
    """100,000 iterations leave the run's bookkeeping as small as 10 do: nothing grows per step."""

    def run(iterations: int) -> ExecutionContext:
        with workflow("flat") as wf:

            @task(inject_context=True)
            def loop(ctx: TaskExecutionContext, n: int = 0) -> None:
                if n < iterations:
                    ctx.next_task(TaskWrapper("side", lambda: None))
                    ctx.next_iteration(n + 1)

        _, ctx = wf.execute(ret_context=True)
        return ctx

    short, long = run(10), run(100_000)
    assert long.cycle_counts["loop"] == 100_001
    assert long.steps == 200_001
    assert _sizes(long) == _sizes(short)
    assert _sizes(long.graph) == _sizes(short.graph)
    assert len(long.queue) == 0


# --- terminate and cancel --------------------------------------------------------------------------


def test_terminate_workflow_ends_the_run_successfully() -> None:
    log: list[str] = []
    with workflow("terminate") as wf:

        @task(inject_context=True)
        def check_cache(ctx: TaskExecutionContext) -> str:
            log.append("check_cache")
            ctx.next_task(recorder(log, "dynamic_never"))
            ctx.terminate_workflow("cache hit")
            return "cached"

        check_cache >> recorder(log, "never")
        recorder(log, "other_root")
    result, ctx = wf.execute(start_node="check_cache", ret_context=True)
    assert result == "cached"
    assert log == ["check_cache"]
    assert len(ctx.queue) == 0


def test_cancel_workflow_ends_the_run_with_an_error() -> None:
    log: list[str] = []
    with workflow("cancel") as wf:

        @task(inject_context=True)
        def validate(ctx: TaskExecutionContext) -> None:
            log.append("validate")
            ctx.cancel_workflow("invalid data format")

        validate >> recorder(log, "never")
    with pytest.raises(WorkflowCancelledError, match="invalid data format") as info:
        wf.execute()
    assert info.value.task_id == "validate"
    assert log == ["validate"]


def test_steering_requests_of_a_failed_task_are_dropped() -> None:
    log: list[str] = []
    with workflow("fail_then") as wf:

        @task(inject_context=True)
        def broken(ctx: TaskExecutionContext) -> None:
            ctx.next_task(recorder(log, "never"))
            ctx.terminate_workflow("no")
            raise RuntimeError("boom")

    with pytest.raises(TaskExecutionError):
        wf.execute()
    assert log == []


def test_keyboard_interrupt_in_a_task_is_not_wrapped_as_a_task_failure() -> None:
    def interrupted() -> None:
        raise KeyboardInterrupt

    with workflow("ctrl_c") as wf:
        TaskWrapper("interrupted", interrupted)
    with pytest.raises(KeyboardInterrupt):
        wf.execute()
