"""The ``>>`` / ``|`` DSL and ``with workflow()``: wiring, run-once semantics, and build-time checks."""

from __future__ import annotations

import pytest

from graflow import ParallelGroup, TaskWrapper, task, workflow
from graflow.exceptions import (
    DuplicateTaskError,
    GraflowError,
    GraphCycleError,
    GraphError,
    TaskNotFoundError,
)


def recorder(log: list[str], task_id: str) -> TaskWrapper:
    """A task that appends its id to ``log`` and returns it."""

    def run() -> str:
        log.append(task_id)
        return task_id

    return TaskWrapper(task_id, run)


@task
def lonely_module_task() -> str:
    return "ran alone"


def test_workflow_collects_the_tasks_wired_inside() -> None:
    log: list[str] = []
    with workflow("etl") as wf:
        a, b, c = (recorder(log, n) for n in "abc")
        a >> b >> c
    assert wf.name == "etl"
    assert set(wf.graph.nodes) == {"a", "b", "c"}
    assert set(wf.graph.edges()) == {("a", "b"), ("b", "c")}
    assert log == []  # building runs nothing


def test_sequence_runs_in_order_and_returns_the_last_result() -> None:
    log: list[str] = []
    with workflow("seq") as wf:
        a, b, c = (recorder(log, n) for n in "abc")
        a >> b >> c
    assert wf.execute() == "c"
    assert log == ["a", "b", "c"]


def test_every_result_is_readable_from_the_context() -> None:
    log: list[str] = []
    with workflow("seq") as wf:
        a, b = recorder(log, "a"), recorder(log, "b")
        a >> b
    result, ctx = wf.execute(ret_context=True)
    assert result == "b"
    assert ctx.get_result("a") == "a"
    assert wf.last_context is ctx
    with pytest.raises(TaskNotFoundError):
        ctx.get_result("nope")
    assert ctx.get_result("nope", default=None) is None


def test_lshift_wires_the_other_way() -> None:
    log: list[str] = []
    with workflow("lshift") as wf:
        a, b = recorder(log, "a"), recorder(log, "b")
        b << a
    wf.execute()
    assert log == ["a", "b"]


def test_diamond_sink_runs_once_after_both_branches() -> None:
    log: list[str] = []
    with workflow("diamond") as wf:
        a, b, c, d = (recorder(log, n) for n in "abcd")
        a >> b >> d
        a >> c >> d
    assert wf.execute() == "d"
    assert log.count("d") == 1
    assert log[0] == "a" and log[-1] == "d"
    assert sorted(log[1:3]) == ["b", "c"]


def test_diamond_with_a_longer_branch_still_waits_for_it() -> None:
    log: list[str] = []
    with workflow("uneven") as wf:
        a, b, c1, c2, c3, d = (recorder(log, n) for n in ("a", "b", "c1", "c2", "c3", "d"))
        a >> b >> d
        a >> c1 >> c2 >> c3 >> d
    wf.execute()
    assert log.count("d") == 1
    assert log.index("d") > log.index("c3")


def test_parallel_group_fan_out_and_fan_in() -> None:
    log: list[str] = []
    with workflow("fan") as wf:
        src, p1, p2, p3, agg = (recorder(log, n) for n in ("src", "p1", "p2", "p3", "agg"))
        src >> (p1 | p2 | p3) >> agg
    wf.execute()
    assert log[0] == "src" and log[-1] == "agg"
    assert sorted(log[1:4]) == ["p1", "p2", "p3"]


def test_multi_stage_pipeline_runs_each_task_once_stage_by_stage() -> None:
    log: list[str] = []
    names = ("load_a", "load_b", "validate", "process_a", "process_b", "save_db", "save_file")
    with workflow("stages") as wf:
        la, lb, v, pa, pb, sd, sf = (recorder(log, n) for n in names)
        (la | lb) >> v >> (pa | pb) >> (sd | sf)
    wf.execute()
    assert sorted(log) == sorted(names)
    assert sorted(log[:2]) == ["load_a", "load_b"]
    assert log[2] == "validate"
    assert sorted(log[3:5]) == ["process_a", "process_b"]
    assert sorted(log[5:]) == ["save_db", "save_file"]


@pytest.mark.parametrize("shape", ["x | (y | z)", "(x | y) | z", "x | y | z"])
def test_nested_or_runs_each_member_once(shape: str) -> None:
    log: list[str] = []
    with workflow("or") as wf:
        x, y, z = (recorder(log, n) for n in "xyz")
        group = eval(shape, {}, {"x": x, "y": y, "z": z})
        group >> recorder(log, "after")
    wf.execute()
    assert sorted(log[:3]) == ["x", "y", "z"]
    assert log[3:] == ["after"]


def test_named_inner_group_is_a_member_of_the_outer_group() -> None:
    log: list[str] = []
    with workflow("nested") as wf:
        x, y, z = (recorder(log, n) for n in "xyz")
        inner = (y | z).set_group_name("inner")
        outer = (x | inner).set_group_name("outer")
        outer >> recorder(log, "after")
    _, ctx = wf.execute(ret_context=True)
    assert sorted(log[:3]) == ["x", "y", "z"] and log[3] == "after"
    assert set(ctx.get_result("inner")) == {"y", "z"}
    assert set(ctx.get_result("outer")) == {"x", "inner"}


def test_group_result_maps_member_ids_to_results() -> None:
    with workflow("groupresult") as wf:
        (TaskWrapper("p", lambda: 1) | TaskWrapper("q", lambda: 2)).set_group_name("pq")
    _, ctx = wf.execute(ret_context=True)
    assert ctx.get_result("pq") == {"p": 1, "q": 2}


def test_set_group_name_before_wiring() -> None:
    log: list[str] = []
    with workflow("named") as wf:
        a, b, agg = (recorder(log, n) for n in ("a", "b", "agg"))
        (a | b).set_group_name("parallel_tasks") >> agg
    assert ("parallel_tasks", "agg") in wf.graph.edges()
    _, ctx = wf.execute(ret_context=True)
    assert set(ctx.get_result("parallel_tasks")) == {"a", "b"}


def test_set_group_name_after_wiring_renames_the_node_and_its_edges() -> None:
    log: list[str] = []
    with workflow("renamed") as wf:
        first, a, b, last = (recorder(log, n) for n in ("first", "a", "b", "last"))
        group = a | b
        first >> group >> last
        group.set_group_name("middle")
    assert set(wf.graph.edges()) == {("first", "middle"), ("middle", "last")}
    assert wf.graph.member_of == {"a": "middle", "b": "middle"}
    _, ctx = wf.execute(ret_context=True)
    assert log[0] == "first" and log[-1] == "last"
    assert set(ctx.get_result("middle")) == {"a", "b"}


def test_renaming_a_group_to_a_taken_id_is_rejected() -> None:
    with workflow("clash") as wf:
        TaskWrapper("taken", lambda: 1)
        group = TaskWrapper("a", lambda: 1) | TaskWrapper("b", lambda: 2)
        with pytest.raises(DuplicateTaskError):
            group.set_group_name("taken")
    assert "taken" in wf.graph


def test_static_cycle_is_rejected_naming_the_cycle() -> None:
    with workflow("cycle"):
        a, b, c = (TaskWrapper(n, lambda: None) for n in "abc")
        a >> b >> c
        with pytest.raises(GraphCycleError) as info:
            c >> a
    assert info.value.cycle == ["a", "b", "c"]
    assert "a >> b >> c >> a" in str(info.value)
    assert "next_iteration" in str(info.value)


def test_self_edge_is_a_cycle() -> None:
    with workflow("self"):
        a = TaskWrapper("a", lambda: None)
        with pytest.raises(GraphCycleError, match="static edges: a >> a"):
            a >> a


def test_duplicate_task_id_is_rejected() -> None:
    with workflow("dup"):
        TaskWrapper("same", lambda: 1)
        with pytest.raises(DuplicateTaskError, match="'same'") as info:
            TaskWrapper("same", lambda: 2)
    assert info.value.task_id == "same"


def test_wiring_the_same_task_twice_is_not_a_duplicate() -> None:
    log: list[str] = []
    with workflow("reuse") as wf:
        a, b, c = (recorder(log, n) for n in "abc")
        a >> b
        a >> c
        a >> b
    wf.execute()
    assert log.count("a") == 1 and log.count("b") == 1


def test_group_member_cannot_take_edges_of_its_own() -> None:
    with workflow("member"):
        a, b, c = (TaskWrapper(n, lambda: None) for n in "abc")
        a | b
        with pytest.raises(GraphError, match="member of parallel group"):
            a >> c


def test_operators_outside_a_workflow_say_what_is_missing() -> None:
    a, b = TaskWrapper("a", lambda: None), TaskWrapper("b", lambda: None)
    with pytest.raises(GraflowError, match="workflow"):
        a >> b


def test_single_module_level_task_runs_as_the_start_node() -> None:
    with workflow("single") as wf:
        pass
    assert wf.execute(start_node=lonely_module_task) == "ran alone"
    assert wf.execute(lonely_module_task) == "ran alone"


def test_workflow_add_puts_unwired_tasks_in_the_graph() -> None:
    with workflow("added") as wf:
        pass
    wf.add(lonely_module_task)
    assert "lonely_module_task" in wf.graph
    assert wf.execute() == "ran alone"


def test_start_node_by_id_runs_from_the_middle() -> None:
    log: list[str] = []
    with workflow("middle") as wf:
        a, b, c = (recorder(log, n) for n in "abc")
        a >> b >> c
    wf.execute(start_node="b")
    assert log == ["b", "c"]


def test_start_from_the_middle_waits_only_for_reachable_predecessors() -> None:
    log: list[str] = []
    with workflow("partial") as wf:
        a, b, c, d = (recorder(log, n) for n in "abcd")
        a >> c
        b >> c >> d
    wf.execute(start_node="b")
    assert log == ["b", "c", "d"]


def test_unknown_start_node_lists_the_tasks() -> None:
    with workflow("typo") as wf:
        TaskWrapper("extract", lambda: 1)
    with pytest.raises(TaskNotFoundError, match="extract") as info:
        wf.execute(start_node="extrakt")
    assert info.value.task_id == "extrakt"


def test_several_roots_all_run() -> None:
    log: list[str] = []
    with workflow("roots") as wf:
        r1, r2, sink = (recorder(log, n) for n in ("r1", "r2", "sink"))
        r1 >> sink
        r2 >> sink
    wf.execute()
    assert sorted(log[:2]) == ["r1", "r2"] and log[2:] == ["sink"]


def test_each_execute_is_a_fresh_run() -> None:
    with workflow("twice") as wf:

        @task(inject_context=True)
        def count(ctx) -> int:  # type: ignore[no-untyped-def]
            return ctx.get_channel().increment("runs")

    assert wf.execute() == 1
    assert wf.execute() == 1


def test_parallel_group_is_an_executable_node() -> None:
    with workflow("node") as wf:
        group = TaskWrapper("a", lambda: 1) | TaskWrapper("b", lambda: 2)
    assert isinstance(group, ParallelGroup)
    assert group.member_ids == ["a", "b"]
    assert wf.graph.get(group.task_id) is group
    with pytest.raises(TypeError, match="not callable"):
        group()


def test_renaming_a_nested_group_after_wiring_keeps_it_inside_its_outer_group() -> None:
    log: list[str] = []
    with workflow("nested_rename") as wf:
        x, y, z = (recorder(log, n) for n in "xyz")
        inner = y | z
        outer = (x | inner.set_group_name("tmp")).set_group_name("outer")
        outer >> recorder(log, "after")
        inner.set_group_name("inner")
    assert wf.graph.member_of == {"x": "outer", "y": "inner", "z": "inner", "inner": "outer"}
    assert wf.graph.roots() == ["outer"]
    _, ctx = wf.execute(ret_context=True)
    assert sorted(log) == ["after", "x", "y", "z"]
    assert set(ctx.get_result("outer")) == {"x", "inner"}
