"""Compatibility with upstream Graflow 0.2's ``tests/integration/test_task_instance_workflows.py``
(GraflowAI/graflow): several task instances of one ``@task`` function, each with its own id and
bound parameters (``fetch(task_id="api", source="api")``), in sequences, groups and diamonds;
bound parameters win over channel keys, the others come from the channel. Instances with
automatic ids (``process(value=5)``) need ``process.bind(value=5)`` in Graflow (see
``test_tutorial_guide.py``).
"""

from __future__ import annotations

from typing import Any

from graflow.core.decorators import task
from graflow.core.workflow import workflow


def test_instances_in_sequence_and_in_a_group() -> None:
    results: list[str] = []

    @task
    def process_query(query: str) -> str:
        results.append(f"Processed: {query}")
        return results[-1]

    with workflow("multi_instance") as wf:
        tokyo = process_query(task_id="tokyo", query="Tokyo?")
        paris = process_query(task_id="paris", query="Paris?")
        london = process_query(task_id="london", query="London?")
        tokyo >> paris >> london
        wf.execute(tokyo.task_id)
    assert results == ["Processed: Tokyo?", "Processed: Paris?", "Processed: London?"]

    @task
    def fetch_data(source: str) -> dict[str, str]:
        return {"source": source, "data": f"data_from_{source}"}

    with workflow("parallel_fetch") as wf:
        (
            fetch_data(task_id="api", source="api")
            | fetch_data(task_id="db", source="database")
            | fetch_data(task_id="cache", source="cache")
        )
        _, ctx = wf.execute(ret_context=True)
    assert {t: ctx.get_result(t)["source"] for t in ("api", "db", "cache")} == {
        "api": "api",
        "db": "database",
        "cache": "cache",
    }


def test_instances_in_a_diamond_with_an_initial_channel() -> None:
    @task(inject_context=True)
    def transform(ctx: Any, operation: str, value: int) -> int:
        result = {"multiply": value * 2, "add": value + 10, "square": value**2}[operation]
        ctx.get_channel().set(f"{operation}_result", result)
        return result

    @task(inject_context=True)
    def combine(ctx: Any) -> dict[str, int]:
        channel = ctx.get_channel()
        return {"total": channel.get("multiply_result") + channel.get("add_result")}

    with workflow("diamond") as wf:
        source = transform(task_id="source", operation="square", value=3)
        multiply = transform(task_id="multiply", operation="multiply", value=9)
        add = transform(task_id="add", operation="add", value=9)
        source >> (multiply | add) >> combine
        _, ctx = wf.execute(source.task_id, ret_context=True, initial_channel={"value": 9})
    assert [ctx.get_result(t) for t in ("source", "multiply", "add")] == [9, 18, 19]
    assert ctx.get_result("combine") == {"total": 37}


def test_bound_parameters_override_the_channel_the_rest_comes_from_it() -> None:
    @task
    def calculate(a: int, b: int, c: int, d: int) -> int:
        return a + b + c + d

    with workflow("mixed_test") as wf:
        bound = calculate(task_id="bound", a=10, c=30)
        unbound = calculate(task_id="unbound")
        bound | unbound
        _, ctx = wf.execute(ret_context=True, initial_channel={"a": 1, "b": 2, "c": 3, "d": 4})
    assert ctx.get_result("bound") == 46
    assert ctx.get_result("unbound") == 10


def test_pipeline_of_parallel_instance_groups() -> None:
    @task(inject_context=True)
    def fetch_data(ctx: Any, source: str) -> dict[str, Any]:
        data = {"api": 100, "database": 250, "file": 50}[source]
        ctx.get_channel().set(f"{source}_data", {"records": data, "status": "success"})
        return {"records": data}

    @task(inject_context=True)
    def validate_data(ctx: Any, source: str) -> bool:
        valid = ctx.get_channel().get(f"{source}_data")["records"] > 0
        ctx.get_channel().set(f"{source}_valid", valid)
        return bool(valid)

    @task(inject_context=True)
    def aggregate_results(ctx: Any) -> dict[str, Any]:
        channel = ctx.get_channel()
        sources = ("api", "database", "file")
        return {
            "all_valid": all(channel.get(f"{s}_valid") for s in sources),
            "total_records": sum(channel.get(f"{s}_data")["records"] for s in sources),
        }

    with workflow("data_pipeline") as wf:
        fetch_all = (
            fetch_data(task_id="fetch_api", source="api")
            | fetch_data(task_id="fetch_db", source="database")
            | fetch_data(task_id="fetch_file", source="file")
        )
        validate_all = (
            validate_data(task_id="validate_api", source="api")
            | validate_data(task_id="validate_db", source="database")
            | validate_data(task_id="validate_file", source="file")
        )
        fetch_all >> validate_all >> aggregate_results
        _, ctx = wf.execute(fetch_all.task_id, ret_context=True)
    assert ctx.get_result("fetch_db") == {"records": 250}
    assert ctx.get_result("validate_file") is True
    assert ctx.get_result("aggregate_results") == {"all_valid": True, "total_records": 400}
