"""Compatibility with upstream Graflow 0.2's ``examples/02_workflows`` (GraflowAI/graflow).

Follows ``simple_pipeline.py`` (graph introspection, ``ctx.execute("start")``),
``workflow_decorator.py`` (``with workflow(...) as ctx``), ``operators_demo.py`` (``>>``, ``|``,
``set_group_name`` and starting from a named group, the diamond, whose sink runs once after both
branches, as upstream's ``tests/scenario/test_parallel_diamond.py`` checks), ``context_injection.py``
(``inject_context=True``, session id, channel) and ``task_graph_lowlevel_api.py`` (``TaskWrapper``s
with ``register_to_context=False`` on a hand-built ``TaskGraph``): these run unchanged.
``agent_loop.py`` wires a static cycle (``agent >> tool >> agent``), which Graflow refuses by design
(static edges form a DAG; loops run with ``next_iteration`` or ``next_task(..., goto=True)``);
the port shows the rewrite. ``max_steps`` differs too (see the xfail).
"""

from __future__ import annotations

import pytest

from graflow.core.context import ExecutionContext, TaskExecutionContext
from graflow.core.decorators import task
from graflow.core.engine import WorkflowEngine
from graflow.core.graph import TaskGraph
from graflow.core.task import TaskWrapper
from graflow.core.workflow import workflow
from graflow.exceptions import GraphError


def test_simple_pipeline_counts_tasks_and_edges_and_runs_in_order() -> None:
    log: list[str] = []
    with workflow("simple_pipeline") as ctx:

        @task
        def start() -> None:
            log.append("start")

        @task
        def middle() -> None:
            log.append("middle")

        @task
        def end() -> None:
            log.append("end")

        start >> middle >> end
        assert ctx.name == "simple_pipeline"
        assert len(ctx.graph.nodes) == 3
        assert len(ctx.graph.get_edges()) == 2
        ctx.execute("start")
    assert log == ["start", "middle", "end"]


def test_workflow_decorator_runs_in_order_and_from_a_middle_task() -> None:
    log: list[str] = []
    with workflow("data_pipeline") as ctx:

        @task
        def extract_data() -> dict[str, object]:
            log.append("extract")
            return {"records": 1000, "source": "database"}

        @task
        def transform_data() -> str:
            log.append("transform")
            return "1000 records processed"

        @task
        def load_data() -> str:
            log.append("load")
            return "success"

        extract_data >> transform_data >> load_data
        assert ctx.execute("extract_data") == "success"
        assert log == ["extract", "transform", "load"]
        log.clear()
        ctx.execute("transform_data")
    assert log == ["transform", "load"]


def test_operators_demo_named_group_then_combine_and_diamond() -> None:
    log: list[str] = []
    with workflow("parallel") as ctx:

        @task
        def task_a() -> None:
            log.append("a")

        @task
        def task_b() -> None:
            log.append("b")

        @task
        def task_c() -> None:
            log.append("c")

        @task
        def combine() -> None:
            log.append("combine")

        (task_a | task_b | task_c).set_group_name("parallel_tasks") >> combine
        ctx.execute("parallel_tasks")
    assert sorted(log[:3]) == ["a", "b", "c"]
    assert log[3:] == ["combine"]

    log.clear()
    with workflow("diamond") as ctx:

        @task
        def fetch() -> None:
            log.append("fetch")

        @task
        def transform_a() -> None:
            log.append("ta")

        @task
        def transform_b() -> None:
            log.append("tb")

        @task
        def store() -> None:
            log.append("store")

        fetch >> (transform_a | transform_b) >> store
        assert "TaskGraph" in str(ctx.graph)  # upstream prints the graph
        ctx.execute("fetch")
    assert log[0] == "fetch" and log[-1] == "store" and sorted(log[1:3]) == ["ta", "tb"]


def test_context_injection_shares_config_and_metrics_through_the_channel() -> None:
    seen: dict[str, object] = {}
    with workflow("data_pipeline") as ctx:

        @task(inject_context=True)
        def setup(context: TaskExecutionContext) -> str:
            seen["session"] = context.session_id
            seen["task_id"] = context.task_id
            context.get_channel().set("config", {"source": "database", "batch_size": 100})
            return "setup_complete"

        @task(inject_context=True)
        def process(context: TaskExecutionContext) -> str:
            channel = context.get_channel()
            config = channel.get("config")
            channel.set("metrics", {"processed": 5 * config["batch_size"], "errors": 0})
            return "processing_complete"

        @task(inject_context=True)
        def report(context: TaskExecutionContext) -> str:
            seen["report_session"] = context.session_id
            seen["metrics"] = context.get_channel().get("metrics")
            seen["cycle"] = context.cycle_count
            return "report_complete"

        setup >> process >> report
        assert ctx.execute("setup") == "report_complete"
    assert seen["task_id"] == "setup"
    assert seen["session"] and seen["session"] == seen["report_session"]
    assert seen["metrics"] == {"processed": 500, "errors": 0}
    assert seen["cycle"] == 1


@pytest.mark.xfail(
    strict=True,
    reason="by design: upstream stops silently after max_steps; Graflow raises MaxStepsExceededError so "
    "an unfinished run never looks finished (the pending task stays queued for a checkpoint)",
)
def test_max_steps_stops_the_run_quietly() -> None:
    log: list[str] = []
    with workflow("limited") as ctx:

        @task
        def one() -> None:
            log.append("one")

        @task
        def two() -> None:
            log.append("two")

        @task
        def three() -> None:
            log.append("three")

        one >> two >> three
        ctx.execute("one", max_steps=2)
    assert log == ["one", "two"]


def test_low_level_task_graph_diamond() -> None:
    log: list[str] = []

    def step(name: str) -> TaskWrapper:
        return TaskWrapper(name, func=lambda: log.append(name), register_to_context=False)

    graph = TaskGraph()
    for t in (step("fetch"), step("transform_a"), step("transform_b"), step("store")):
        graph.add_node(t, t.task_id)
    for a, b in (
        ("fetch", "transform_a"),
        ("fetch", "transform_b"),
        ("transform_a", "store"),
        ("transform_b", "store"),
    ):
        graph.add_edge(a, b)
    assert "nodes=4" in str(graph)
    WorkflowEngine().execute(ExecutionContext.create(graph, "fetch", max_steps=10))
    assert log[0] == "fetch" and log[-1] == "store" and sorted(log[1:3]) == ["transform_a", "transform_b"]


@pytest.mark.xfail(
    strict=True,
    raises=GraphError,
    reason="by design: static edges form a DAG (the cycle is refused when wired, naming it); "
    "loops run with next_iteration() or next_task(..., goto=True)",
)
def test_agent_loop_as_a_static_cycle() -> None:
    with workflow("agent_loop"):

        @task
        def agent() -> None: ...

        @task
        def tool() -> None: ...

        agent >> tool >> agent


def test_agent_loop_rewritten_with_goto() -> None:
    calls = {"agent": 0, "tool": 0}
    with workflow("agent_loop") as ctx:

        @task(inject_context=True)
        def agent(context: TaskExecutionContext) -> str:
            calls["agent"] += 1
            if calls["tool"] >= 2:
                context.terminate_workflow("budget exhausted")
                return "final_answer"
            return f"agent_request_{calls['agent']}"

        @task(inject_context=True)
        def tool(context: TaskExecutionContext) -> str:
            calls["tool"] += 1
            context.next_task(agent, goto=True)  # the edge back: tool >> agent
            return f"tool_result_{calls['tool']}"

        agent >> tool
        assert ctx.execute("agent") == "final_answer"
    assert calls == {"agent": 3, "tool": 2}
