"""Compatibility with upstream Graflow 0.2's ``tests/core/test_decorators_syntax.py`` and
``tests/core/test_keyword_args_resolution.py`` (GraflowAI/graflow).

Every ``@task`` spelling upstream accepts, and parameters filled from channel keys of the same name
(defaults, keyword-only parameters, ``None`` values, no type conversion). Two differences, both
marked: ``@task(inject_context=True)`` on a function with no parameter for the context fails when
decorated (Graflow checks early; upstream fails when it runs), and ``resolve_keyword_args=False``
is not offered.
"""

from __future__ import annotations

from typing import Any

import pytest

from graflow.core.context import TaskExecutionContext
from graflow.core.decorators import task
from graflow.core.task import TaskWrapper
from graflow.core.workflow import workflow


def test_every_decorator_spelling() -> None:
    with workflow("spellings"):

        @task
        def func1() -> str:
            return "test1"

        @task()
        def func2() -> str:
            return "test2"

        @task("custom_id_3")
        def func3() -> str:
            return "test3"

        @task("custom_id_4", inject_context=True)
        def func4(ctx: TaskExecutionContext) -> str:
            return "test4"

        @task(id="custom_id_5")
        def func5() -> str:
            return "test5"

        @task(inject_context=True)
        def func6(ctx: TaskExecutionContext) -> str:
            return "test6"

    tasks = [func1, func2, func3, func4, func5, func6]
    assert all(isinstance(t, TaskWrapper) for t in tasks)
    assert [t.task_id for t in tasks] == ["func1", "func2", "custom_id_3", "custom_id_4", "custom_id_5", "func6"]
    assert [t.inject_context for t in tasks] == [False, False, False, True, False, True]
    assert (func1(), func2(), func3(), func5()) == ("test1", "test2", "test3", "test5")


@pytest.mark.xfail(
    strict=True,
    reason="by design: Graflow refuses inject_context=True on a function without a context parameter "
    "when it is decorated (bad input fails early); upstream accepts it and fails when it runs",
)
def test_inject_context_on_a_function_without_parameters_is_accepted() -> None:
    @task(inject_context=True)
    def my_function() -> str:
        return "test"

    assert my_function.inject_context is True


def _run_with_channel(values: dict[str, Any], process: TaskWrapper) -> None:
    with workflow("kwargs") as wf:

        @task(inject_context=True)
        def setup(context: TaskExecutionContext) -> None:
            for key, value in values.items():
                context.get_channel().set(key, value)

        wf.add(process)
        setup >> process
        wf.execute(setup.task_id)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"name": "test", "value": 42}, {"name": "test", "value": 42}),
        ({"name": "Alice"}, {"name": "Alice", "value": 18}),
        ({"name": "x", "value": None}, {"name": "x", "value": None}),
        ({"name": "x", "value": "42"}, {"name": "x", "value": "42"}),  # no type conversion
    ],
)
def test_parameters_come_from_channel_keys(values: dict[str, Any], expected: dict[str, Any]) -> None:
    seen: list[dict[str, Any]] = []

    @task
    def process(name: str, value: Any = 18) -> None:
        seen.append({"name": name, "value": value})

    _run_with_channel(values, process)
    assert seen == [expected]


def test_keyword_only_parameters_and_context_with_several_keys() -> None:
    seen: list[Any] = []

    @task
    def keyword_only(*, name: str, value: int = 10) -> None:
        seen.append((name, value))

    _run_with_channel({"name": "test", "value": 20}, keyword_only)

    @task(inject_context=True)
    def with_context(context: TaskExecutionContext, name: str, age: int, city: str = "Unknown") -> None:
        seen.append((bool(context.session_id), name, age, city))

    _run_with_channel({"name": "Alice", "age": 25, "city": "Tokyo"}, with_context)
    assert seen == [("test", 20), (True, "Alice", 25, "Tokyo")]


def test_parameter_order_does_not_matter() -> None:
    seen: list[tuple[str, int, float]] = []

    @task
    def process(z: str, a: int, m: float) -> None:
        seen.append((z, a, m))

    _run_with_channel({"a": 1, "m": 2.5, "z": "test"}, process)
    assert seen == [("test", 1, 2.5)]


@pytest.mark.xfail(strict=True, reason="needs a feature: @task(resolve_keyword_args=False)")
def test_resolution_can_be_turned_off() -> None:
    seen: list[str] = []

    @task(resolve_keyword_args=False)  # type: ignore[call-overload]
    def process(value: str = "default") -> None:
        seen.append(value)

    _run_with_channel({"value": "from_channel"}, process)
    assert seen == ["default"]
