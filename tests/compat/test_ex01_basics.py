"""Compatibility with upstream Graflow 0.2's ``examples/01_basics`` (GraflowAI/graflow).

Follows ``hello_world.py`` (a task run on its own with ``.run()``), ``task_dependencies.py`` and
``task_with_parameters.py`` (tasks called as plain functions, results passed by hand). Written anew
from their behaviour with upstream's import paths; all of it runs unchanged.
"""

from __future__ import annotations

from graflow.core.decorators import task
from graflow.core.task import TaskWrapper


def test_hello_world_task_runs_on_its_own() -> None:
    calls: list[str] = []

    @task
    def hello() -> str:
        calls.append("hello")
        return "success"

    assert isinstance(hello, TaskWrapper)
    assert hello.run() == "success"
    assert calls == ["hello"]


def test_task_dependencies_called_as_functions() -> None:
    @task
    def fetch_data() -> dict[str, object]:
        return {"record_count": 100, "status": "success"}

    @task
    def process_data(data: dict[str, object]) -> str:
        return f"Data processed: {data['record_count']} records"

    assert process_data(fetch_data()) == "Data processed: 100 records"


def test_task_with_parameters_positional_keyword_and_nested() -> None:
    @task
    def add(a: int, b: int) -> int:
        return a + b

    @task
    def multiply(x: int, y: int) -> int:
        return x * y

    @task
    def format_result(value: int) -> str:
        return f"Result: {value}"

    assert add(5, 3) == 8
    assert multiply(4, 7) == 28
    assert format_result(multiply(add(5, 3), 2)) == "Result: 16"
    assert format_result(multiply(add(10, 5), 3)) == "Result: 45"
    assert add.run(a=1, b=2) == 3  # upstream's run(**kwargs) outside a workflow
