"""Tasks: the ``@task`` forms, ``TaskWrapper`` built at run time, direct calls, and argument data flow."""

from __future__ import annotations

from typing import Any

import pytest

from graflow import (
    ExecutionContext,
    TaskExecutionContext,
    TaskHandler,
    TaskWrapper,
    WorkflowEngine,
    task,
    workflow,
)
from graflow.core.task import DEFAULT_HANDLER
from graflow.exceptions import MissingParameterError, TaskExecutionError


@task
def module_level_double(x: int) -> int:
    return x * 2


def test_bare_decorator_uses_the_function_name_as_id() -> None:
    assert isinstance(module_level_double, TaskWrapper)
    assert module_level_double.task_id == "module_level_double"
    assert module_level_double.handler == DEFAULT_HANDLER
    assert module_level_double.inject_context is False


def test_decorator_with_positional_id() -> None:
    @task("custom_id")
    def f() -> int:
        return 1

    assert f.task_id == "custom_id"


def test_decorator_with_keyword_options() -> None:
    @task(id="kw", inject_context=True, handler="gpu", max_cycles=7)
    def f(ctx: TaskExecutionContext) -> None:
        return None

    assert (f.task_id, f.inject_context, f.handler, f.max_cycles) == ("kw", True, "gpu", 7)


def test_calling_a_task_object_runs_the_function_directly() -> None:
    assert module_level_double(21) == 42
    assert module_level_double(x=4) == 8


def test_calling_a_context_task_directly_passes_what_the_caller_gives() -> None:
    @task(inject_context=True)
    def needs_ctx(ctx: Any, value: int) -> tuple[Any, int]:
        return ctx, value

    assert needs_ctx("fake-context", 3) == ("fake-context", 3)


def test_task_wrapper_runs_a_lambda_and_a_closure_in_a_workflow() -> None:
    factor = 5

    def make_closure() -> Any:
        def inner() -> int:
            return factor * 2

        return inner

    with workflow("lambdas") as wf:
        first = TaskWrapper("first", lambda: factor + 1)
        second = TaskWrapper("second", make_closure())
        first >> second
    _, ctx = wf.execute(ret_context=True)
    assert ctx.get_result("first") == 6
    assert ctx.get_result("second") == 10


def test_inject_context_requires_a_parameter_for_the_context() -> None:
    with pytest.raises(TypeError, match="inject_context=True"):
        TaskWrapper("bad", lambda: 1, inject_context=True)


@pytest.mark.parametrize("bad_id", ["", None, 3])
def test_task_id_must_be_a_non_empty_string(bad_id: Any) -> None:
    with pytest.raises(ValueError, match="task id"):
        TaskWrapper(bad_id, lambda: 1)


def test_max_cycles_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_cycles"):
        TaskWrapper("t", lambda: 1, max_cycles=0)


def test_non_callable_is_rejected_naming_the_task() -> None:
    with pytest.raises(TypeError, match="'t'"):
        TaskWrapper("t", 42)  # type: ignore[arg-type]


# --- data flow -------------------------------------------------------------------------------------


def test_parameter_named_like_a_predecessor_receives_its_result() -> None:
    with workflow("flow") as wf:

        @task
        def load() -> list[int]:
            return [1, 2, 3]

        @task
        def total(load: list[int]) -> int:
            return sum(load)

        load >> total
    assert wf.execute() == 6


def test_parameter_named_like_a_channel_key_receives_its_value() -> None:
    with workflow("flow") as wf:

        @task(inject_context=True)
        def producer(ctx: TaskExecutionContext) -> None:
            ctx.get_channel().set("threshold", 0.75)

        @task
        def consumer(threshold: float) -> float:
            return threshold * 2

        producer >> consumer
    assert wf.execute() == 1.5


def test_explicit_arguments_win_over_results_and_channel() -> None:
    with workflow("flow") as wf:

        @task(inject_context=True)
        def source(ctx: TaskExecutionContext) -> str:
            ctx.get_channel().set("source", "from channel")
            return "from result"

        sink = TaskWrapper("sink", lambda source: source, kwargs={"source": "explicit"})
        source >> sink
    assert wf.execute() == "explicit"


def test_task_result_wins_over_a_channel_key_of_the_same_name() -> None:
    with workflow("flow") as wf:

        @task(inject_context=True)
        def value(ctx: TaskExecutionContext) -> str:
            ctx.get_channel().set("value", "channel")
            return "result"

        @task
        def use(value: str) -> str:
            return value

        value >> use
    assert wf.execute() == "result"


def test_default_is_used_when_nothing_provides_a_value() -> None:
    with workflow("flow") as wf:

        @task
        def solo(limit: int = 9) -> int:
            return limit

    assert wf.execute() == 9


def test_missing_value_is_a_clear_error_naming_the_parameter() -> None:
    with workflow("flow") as wf:

        @task
        def first() -> int:
            return 1

        @task
        def second(first: int, mystery_input: int) -> int:
            return first + mystery_input

        first >> second
    with pytest.raises(TaskExecutionError) as info:
        wf.execute()
    original = info.value.original
    assert isinstance(original, MissingParameterError)
    assert original.parameter == "mystery_input"
    assert original.task_id == "second"
    assert "mystery_input" in str(info.value)
    assert "'second'" in str(info.value)


def test_resolution_order_is_documented_on_task_wrapper() -> None:
    doc = TaskWrapper.__doc__ or ""
    for source in ("explicit", "next_iteration", "result", "channel", "default"):
        assert source in doc


def test_var_keyword_task_receives_explicit_kwargs() -> None:
    with workflow("flow") as wf:
        TaskWrapper("kw", lambda **kw: sorted(kw.items()), kwargs={"a": 1, "b": 2})
    assert wf.execute() == [("a", 1), ("b", 2)]


def test_low_level_create_and_engine_execute_return_the_last_result() -> None:
    with workflow("low") as wf:

        @task
        def one() -> int:
            return 1

        @task
        def two(one: int) -> int:
            return one + 1

        one >> two
    context = ExecutionContext.create(
        wf.graph, "one", queue_backend="memory", channel_backend="memory", config={"unused": True}
    )
    assert WorkflowEngine().execute(context) == 2
    assert context.get_result("one") == 1
    assert context.get_result("two") == 2


def test_context_execute_runs_with_a_given_engine_and_start_node() -> None:
    class Tagging(TaskHandler):
        def execute_task(self, task: Any, context: Any) -> Any:
            return ("tagged", task.run())

    engine = WorkflowEngine()
    engine.register_handler("tag", Tagging())
    with workflow("ctx_execute") as wf:
        TaskWrapper("first", lambda: 1) >> TaskWrapper("second", lambda: 2, handler="tag")
    assert ExecutionContext.create(wf.graph).execute(engine=engine) == ("tagged", 2)
    context = ExecutionContext.create(wf.graph)
    assert context.execute("second", engine=engine) == ("tagged", 2)
    assert "first" not in context.results
