"""Compatibility with upstream Graflow 0.2's ``tests/core/test_next_iteration.py`` (GraflowAI/graflow).

``next_iteration(data)`` re-runs the task with ``data``; ``cycle_count`` is 1-based; a run stops
with ``CycleLimitExceededError`` (``task_id``, ``max_cycles``, ``cycle_count``) when a task asks
for one iteration more than its budget: ``@task(max_cycles=N)``, else
``ExecutionContext.create(..., default_max_cycles=N)``; ``can_iterate()`` lets a task stop in
time. Upstream's ``context.cycle_controller`` (an internal object) has no counterpart and is not
ported.
"""

from __future__ import annotations

from typing import Any

import pytest

from graflow.core.context import ExecutionContext, TaskExecutionContext
from graflow.core.decorators import task
from graflow.core.engine import WorkflowEngine
from graflow.core.graph import TaskGraph
from graflow.core.task import TaskWrapper
from graflow.core.workflow import workflow
from graflow.exceptions import CycleLimitExceededError


def _run(graph: TaskGraph, start: str, default_max_cycles: int = 100, max_steps: int = 50) -> ExecutionContext:
    context = ExecutionContext.create(
        graph, start_node=start, max_steps=max_steps, default_max_cycles=default_max_cycles
    )
    WorkflowEngine().execute(context)
    return context


def test_iteration_counts_up_with_data() -> None:
    graph = TaskGraph()

    @task(inject_context=True)
    def counter(ctx: TaskExecutionContext, data: dict[str, int] | None = None) -> int:
        count = (data or {}).get("count", 0)
        ctx.get_channel().set("last_count", count)
        if count < 3:
            ctx.next_iteration({"count": count + 1})
        return count

    graph.add_node(counter, "counter")
    assert _run(graph, "counter", default_max_cycles=10).channel.get("last_count") == 3


def test_cycle_count_is_one_based() -> None:
    graph = TaskGraph()
    observed: list[int] = []

    @task(inject_context=True, max_cycles=5)
    def repeater(ctx: TaskExecutionContext) -> None:
        observed.append(ctx.cycle_count)
        if ctx.can_iterate():
            ctx.next_iteration()

    graph.add_node(repeater, "repeater")
    _run(graph, "repeater")
    assert observed == [1, 2, 3, 4, 5]


def test_default_max_cycles_stops_an_endless_loop() -> None:
    graph = TaskGraph()

    @task(inject_context=True)
    def infinite_loop(ctx: TaskExecutionContext, data: Any = None) -> str:
        ctx.next_iteration(data)
        return "should stop"

    graph.add_node(infinite_loop, "infinite_loop")
    context = ExecutionContext.create(graph, start_node="infinite_loop", max_steps=50, default_max_cycles=3)
    with pytest.raises(CycleLimitExceededError) as info:
        WorkflowEngine().execute(context)
    assert info.value.task_id == "infinite_loop"
    assert info.value.max_cycles == 3
    assert context.get_result("infinite_loop") == "should stop"


def test_decorator_max_cycles_wins_over_the_default() -> None:
    graph = TaskGraph()
    observed: list[int] = []

    @task(inject_context=True, max_cycles=4)
    def limited(ctx: TaskExecutionContext, data: dict[str, int] | None = None) -> int:
        n = (data or {}).get("n", 0)
        observed.append(ctx.cycle_count)
        ctx.get_channel().set("last_n", n)
        ctx.next_iteration({"n": n + 1})
        return n

    graph.add_node(limited, "limited")
    context = ExecutionContext.create(graph, start_node="limited", max_steps=50, default_max_cycles=100)
    with pytest.raises(CycleLimitExceededError) as info:
        WorkflowEngine().execute(context)
    assert (info.value.task_id, info.value.max_cycles, info.value.cycle_count) == ("limited", 4, 4)
    assert observed == [1, 2, 3, 4]
    assert context.channel.get("last_n") == 3


def test_can_iterate_guards_the_last_iteration() -> None:
    graph = TaskGraph()

    @task(inject_context=True)
    def checker(ctx: TaskExecutionContext, data: dict[str, int] | None = None) -> int:
        n = (data or {}).get("n", 0)
        ctx.get_channel().set(f"can_iterate_{n}", ctx.can_iterate())
        if ctx.can_iterate():
            ctx.next_iteration({"n": n + 1})
        return n

    graph.add_node(checker, "checker")
    context = _run(graph, "checker", default_max_cycles=3)
    assert [context.channel.get(f"can_iterate_{n}") for n in range(3)] == [True, True, False]


def test_iteration_inside_a_pipeline_then_successor() -> None:
    graph = TaskGraph()
    log: list[str] = []

    @task
    def setup() -> str:
        log.append("setup")
        return "initialized"

    @task(inject_context=True)
    def retry_task(ctx: TaskExecutionContext, data: dict[str, int] | None = None) -> str:
        attempt = (data or {}).get("attempt", 0)
        log.append(f"retry:{attempt}")
        if attempt < 2:
            ctx.next_iteration({"attempt": attempt + 1})
        return f"attempt_{attempt}"

    @task
    def finalize() -> str:
        log.append("finalize")
        return "done"

    for t in (setup, retry_task, finalize):
        graph.add_node(t, t.task_id)
    graph.add_edge("setup", "retry_task")
    graph.add_edge("retry_task", "finalize")
    _run(graph, "setup", default_max_cycles=10)
    assert log == ["setup", "retry:0", "retry:1", "retry:2", "finalize"]


def test_iteration_data_is_received_by_the_next_run() -> None:
    graph = TaskGraph()
    received: list[dict[str, list[int]]] = []

    @task(inject_context=True)
    def collector(ctx: TaskExecutionContext, data: dict[str, list[int]] | None = None) -> None:
        data = data or {"items": []}
        received.append(data)
        if len(data["items"]) < 3:
            ctx.next_iteration({"items": [*data["items"], len(data["items"])]})

    graph.add_node(collector, "collector")
    _run(graph, "collector", default_max_cycles=10)
    assert received == [{"items": []}, {"items": [0]}, {"items": [0, 1]}, {"items": [0, 1, 2]}]


def test_nodes_count_cycles_independently() -> None:
    graph = TaskGraph()
    counts: dict[str, list[int]] = {"a": [], "b": []}

    def make(name: str, stop: int) -> Any:
        @task(id=f"node_{name}", inject_context=True)
        def node(ctx: TaskExecutionContext, data: dict[str, int] | None = None) -> int:
            n = (data or {}).get("n", 0)
            counts[name].append(ctx.cycle_count)
            if n < stop:
                ctx.next_iteration({"n": n + 1})
            return n

        return node

    graph.add_node(make("a", 2), "node_a")
    graph.add_node(make("b", 3), "node_b")
    graph.add_edge("node_a", "node_b")
    _run(graph, "node_a", default_max_cycles=10)
    assert counts == {"a": [1, 2, 3], "b": [1, 2, 3, 4]}


def test_decorator_attributes() -> None:
    @task(max_cycles=5)
    def five() -> None: ...

    @task
    def unlimited() -> None: ...

    @task("custom_id", max_cycles=3)
    def by_string() -> None: ...

    @task(id="my_id", max_cycles=7, inject_context=True)
    def by_keyword(ctx: TaskExecutionContext) -> None: ...

    assert five.max_cycles == 5 and unlimited.max_cycles is None
    assert (by_string.task_id, by_string.max_cycles) == ("custom_id", 3)
    assert (by_keyword.task_id, by_keyword.max_cycles, by_keyword.inject_context) == ("my_id", 7, True)


def test_task_sees_its_own_max_cycles() -> None:
    graph = TaskGraph()

    @task(inject_context=True, max_cycles=5)
    def limited(ctx: TaskExecutionContext) -> None:
        ctx.get_channel().set("observed_max", ctx.max_cycles)

    graph.add_node(limited, "limited")
    assert _run(graph, "limited").channel.get("observed_max") == 5


def test_can_iterate_knows_the_engines_max_cycles() -> None:
    """A limit set on the engine is enforced by the run: can_iterate() must see it too."""
    seen: list[tuple[int, int | None]] = []

    def body(ctx: TaskExecutionContext) -> int:
        seen.append((ctx.cycle_count, ctx.max_cycles))
        if ctx.can_iterate():
            ctx.next_iteration()
        return ctx.cycle_count

    with workflow("engine_limit") as wf:
        TaskWrapper("loop", body, inject_context=True)
    assert wf.execute(engine=WorkflowEngine(config={"max_cycles": 3})) == 3
    assert seen == [(1, 3), (2, 3), (3, 3)]


@pytest.mark.parametrize("where", ["task", "run"])
def test_can_iterate_in_a_process_pool_member(where: str) -> None:
    """A member in another process has no graph: the run ships the limit it enforces."""

    def body(ctx: TaskExecutionContext) -> int:
        if ctx.can_iterate():
            ctx.next_iteration()
        return ctx.cycle_count * 100 + (ctx.max_cycles or 0)

    limit = {"max_cycles": 2} if where == "task" else {}
    with workflow(f"pool_limit_{where}") as wf:
        (TaskWrapper("a", body, inject_context=True, **limit) | TaskWrapper("b", lambda: 0)).with_execution(
            backend="multiprocessing", max_workers=2
        )
    config = {} if where == "task" else {"max_cycles": 2}
    _, ctx = wf.execute(ret_context=True, config=config)
    assert ctx.results["a"] == 202
