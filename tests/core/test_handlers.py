"""Task handlers: the interface, registration on the engine, plugin handlers, and where they apply."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from graflow import (
    CoordinationBackend,
    ExecutionContext,
    TaskExecutionContext,
    TaskHandler,
    TaskWrapper,
    WorkflowEngine,
    hookimpl,
    task,
    workflow,
)
from graflow.core.handler import DirectTaskHandler
from graflow.exceptions import MaxStepsExceededError, TaskExecutionError, UnknownNameError
from graflow.plugins.manager import PluginHost


class TaggingHandler(TaskHandler):
    """Runs the task and tags its result, so a test can see which handler ran it."""

    def __init__(self, tag: str = "tagged") -> None:
        self.tag = tag
        self.seen: list[str] = []

    def execute_task(self, task: Any, context: Any) -> Any:
        self.seen.append(task.task_id)
        return (self.tag, task.run())


def test_task_handler_is_abstract() -> None:
    with pytest.raises(TypeError):
        TaskHandler()  # type: ignore[abstract]

    class Incomplete(TaskHandler):
        pass

    with pytest.raises(TypeError):
        Incomplete()  # type: ignore[abstract]


def test_registered_handler_is_selected_by_the_task_handler_name() -> None:
    engine = WorkflowEngine()
    handler = TaggingHandler()
    engine.register_handler("tagging", handler)
    with workflow("handlers") as wf:

        @task(handler="tagging")
        def handled() -> int:
            return 1

        @task
        def plain(handled: tuple[str, int]) -> tuple[str, int]:
            return handled

        handled >> plain
    result, ctx = wf.execute(engine=engine, ret_context=True)
    assert result == ("tagged", 1)
    assert ctx.get_result("handled") == ("tagged", 1)
    assert handler.seen == ["handled"]


def test_registered_handler_is_used_by_the_low_level_api() -> None:
    engine = WorkflowEngine()
    engine.register_handler("tagging", TaggingHandler("low"))
    with workflow("ll") as wf:
        TaskWrapper("t", lambda: 5, handler="tagging")
    context = ExecutionContext.create(wf.graph, "t", engine=engine)
    assert engine.execute(context) == ("low", 5)


def test_handler_may_record_the_result_instead_of_returning_it() -> None:
    class Recording(TaskHandler):
        def execute_task(self, task: Any, context: Any) -> None:
            context.set_result(task.task_id, task.run() * 10)

    engine = WorkflowEngine()
    engine.register_handler("rec", Recording())
    with workflow("rec") as wf:
        TaskWrapper("t", lambda: 4, handler="rec")
    assert wf.execute(engine=engine) == 40


def test_handler_recording_nothing_gives_none() -> None:
    class Silent(TaskHandler):
        def execute_task(self, task: Any, context: Any) -> None:
            task.run()

    engine = WorkflowEngine()
    engine.register_handler("silent", Silent())
    with workflow("silent") as wf:
        TaskWrapper("t", lambda: 4, handler="silent")
    _, ctx = wf.execute(engine=engine, ret_context=True)
    assert ctx.get_result("t") is None


def test_handler_task_run_resolves_arguments_and_context() -> None:
    engine = WorkflowEngine()
    engine.register_handler("tagging", TaggingHandler())
    with workflow("args") as wf:

        @task
        def source() -> int:
            return 3

        @task(handler="tagging", inject_context=True)
        def sink(ctx: TaskExecutionContext, source: int) -> int:
            ctx.get_channel().set("sink_saw", source)
            return source + 1

        source >> sink
    result, ctx = wf.execute(engine=engine, ret_context=True)
    assert result == ("tagged", 4)
    assert ctx.get_channel().get("sink_saw") == 3


def test_handler_run_overrides_win_over_resolved_arguments() -> None:
    class Device(TaskHandler):
        def execute_task(self, task: Any, context: Any) -> Any:
            return task.run(device="cuda:1")

    engine = WorkflowEngine()
    engine.register_handler("device", Device())
    with workflow("overrides") as wf:

        @task(inject_context=True)
        def setup(ctx: TaskExecutionContext) -> None:
            ctx.get_channel().set("device", "cpu")
            ctx.get_channel().set("batch", 8)

        @task(handler="device")
        def train(device: str, batch: int) -> str:
            return f"{batch} on {device}"

        setup >> train
    assert wf.execute(engine=engine) == "8 on cuda:1"


def test_handler_failure_names_the_task() -> None:
    class Refusing(TaskHandler):
        def execute_task(self, task: Any, context: Any) -> Any:
            raise PermissionError("not allowed here")

    engine = WorkflowEngine()
    engine.register_handler("refusing", Refusing())
    with workflow("refused") as wf:
        TaskWrapper("guarded", lambda: 1, handler="refusing")
    with pytest.raises(TaskExecutionError, match="'guarded'") as info:
        wf.execute(engine=engine)
    assert isinstance(info.value.original, PermissionError)


def test_register_handler_rejects_non_handlers() -> None:
    with pytest.raises(TypeError, match="TaskHandler instance"):
        WorkflowEngine().register_handler("x", object())  # type: ignore[arg-type]


def test_task_run_outside_any_run_calls_the_function() -> None:
    # Upstream Graflow 0.2's first example is ``hello.run()`` at top level (issue 12).
    t = TaskWrapper("loose", lambda x=1: x)
    assert t.run() == 1
    assert t.run(x=5) == 5
    assert t() == 1


def test_default_handler_is_direct() -> None:
    engine = WorkflowEngine()
    assert isinstance(engine.handler("direct"), DirectTaskHandler)
    with workflow("default") as wf:
        t = TaskWrapper("t", lambda: 1)
    assert t.handler == "direct"
    assert wf.execute(engine=engine) == 1


@pytest.mark.parametrize("backend", [CoordinationBackend.DIRECT, CoordinationBackend.THREADING])
def test_registered_handler_is_used_inside_in_process_groups(backend: CoordinationBackend) -> None:
    engine = WorkflowEngine()
    handler = TaggingHandler("grouped")
    engine.register_handler("tagging", handler)
    with workflow("grouped") as wf:
        (TaskWrapper("a", lambda: 1, handler="tagging") | TaskWrapper("b", lambda: 2)).with_execution(backend=backend)
    assert wf.execute(engine=engine) == {"a": ("grouped", 1), "b": 2}
    assert handler.seen == ["a"]


def test_registered_handler_is_used_inside_multiprocessing_groups() -> None:
    class PidHandler(TaskHandler):  # defined here so cloudpickle ships it by value
        def execute_task(self, task: Any, context: Any) -> Any:
            import os

            return ("mp-handler", os.getpid(), task.run())

    import os

    engine = WorkflowEngine()
    engine.register_handler("pid", PidHandler())
    with workflow("mp_handler") as wf:
        (TaskWrapper("a", lambda: 1, handler="pid") | TaskWrapper("b", lambda: 2, handler="pid")).with_execution(
            backend=CoordinationBackend.MULTIPROCESSING, max_workers=2
        )
    result = wf.execute(engine=engine)
    assert {k: (v[0], v[2]) for k, v in result.items()} == {"a": ("mp-handler", 1), "b": ("mp-handler", 2)}
    assert os.getpid() not in {v[1] for v in result.values()}


def test_registered_handler_is_used_when_a_stopped_run_is_continued() -> None:
    """A run stopped by max_steps keeps its pending task; executing the context again continues it."""
    engine = WorkflowEngine()
    handler = TaggingHandler("resumed")
    engine.register_handler("tagging", handler)
    with workflow("continue") as wf:
        first = TaskWrapper("first", lambda: 1)
        second = TaskWrapper("second", lambda: 2, handler="tagging")
        first >> second
    context = wf.create_context(max_steps=1, engine=engine)
    with pytest.raises(MaxStepsExceededError):
        engine.execute(context)
    assert handler.seen == []
    context.max_steps = 10
    assert engine.execute(context) == ("resumed", 2)
    assert handler.seen == ["second"]


# --- handlers from plugins -------------------------------------------------------------------------


class UpperHandler(TaskHandler):
    def __init__(self, config: Mapping[str, Any]) -> None:
        self.suffix = config.get("suffix", "")

    def execute_task(self, task: Any, context: Any) -> Any:
        return str(task.run()).upper() + self.suffix


class UpperPlugin:
    built = 0

    @staticmethod
    @hookimpl
    def graflow_register_handlers(register: Any) -> None:
        def factory(config: Mapping[str, Any]) -> UpperHandler:
            UpperPlugin.built += 1
            return UpperHandler(config)

        register("upper", factory)


def test_plugin_handler_is_selected_by_name_and_built_once_per_engine() -> None:
    UpperPlugin.built = 0
    engine = WorkflowEngine(plugins=[UpperPlugin], config={"suffix": "!"})
    with workflow("plugin_handler") as wf:
        a = TaskWrapper("a", lambda: "hello", handler="upper")
        b = TaskWrapper("b", lambda: "world", handler="upper")
        a >> b
    _, ctx = wf.execute(engine=engine, ret_context=True)
    assert (ctx.get_result("a"), ctx.get_result("b")) == ("HELLO!", "WORLD!")
    wf.execute(engine=engine)
    assert UpperPlugin.built == 1


def test_engine_registration_wins_over_a_plugin_handler_of_the_same_name() -> None:
    engine = WorkflowEngine(plugins=[UpperPlugin])
    engine.register_handler("upper", TaggingHandler("mine"))
    with workflow("override") as wf:
        TaskWrapper("a", lambda: "x", handler="upper")
    assert wf.execute(engine=engine) == ("mine", "x")


def test_unknown_handler_lists_installed_and_registered_names() -> None:
    engine = WorkflowEngine()
    engine.register_handler("tagging", TaggingHandler())
    with workflow("unknown") as wf:
        TaskWrapper("t", lambda: 1, handler="gpu")
    with pytest.raises(UnknownNameError, match=r"no handler named 'gpu'; installed: .*direct") as info:
        wf.execute(engine=engine)
    assert "graflow plugins" in str(info.value)
    assert any("tagging" in note for note in info.value.__notes__)


def test_docker_handler_without_graflow_docker_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAFLOW_LOAD_PLUGINS", "")
    engine = WorkflowEngine()
    engine.host = PluginHost()
    with workflow("docker") as wf:
        TaskWrapper("isolated", lambda: 1, handler="docker")
    with pytest.raises(UnknownNameError, match="pip install graflow-docker"):
        wf.execute(engine=engine)


def test_task_run_from_a_handlers_pool_thread_without_the_context_is_refused() -> None:
    """A pool thread does not see the execution: guessing (running alone, without the resolved
    arguments or the run's channel) would lose writes, so it says how to pass the context."""
    import concurrent.futures
    import contextvars

    class PoolHandler(TaskHandler):
        def __init__(self, copy_context: bool) -> None:
            self.copy_context = copy_context

        def execute_task(self, task: TaskWrapper, context: Any) -> Any:
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                if self.copy_context:
                    return pool.submit(contextvars.copy_context().run, task.run).result()
                return pool.submit(task.run).result()

    for copy_context, expected in ((True, "ok"), (False, None)):
        with workflow("pool") as wf:

            @task(handler="pool", inject_context=True)
            def pooled(ctx: Any) -> str:
                ctx.get_channel().set("seen", True)
                return "ok"

        engine = WorkflowEngine()
        engine.register_handler("pool", PoolHandler(copy_context))
        if expected is not None:
            assert wf.execute(engine=engine) == expected
        else:
            with pytest.raises(TaskExecutionError) as info:
                wf.execute(engine=engine)
            assert "copy_context" in str(info.value.original)
