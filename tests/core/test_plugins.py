"""The plugin system as the core uses it: built-ins through the hooks, names, errors, lifecycle hooks."""

from __future__ import annotations

import ast
import contextlib
import importlib.metadata
import inspect
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pluggy
import pytest

import graflow.hookspecs as hookspecs
from graflow import (
    ExecutionContext,
    TaskExecutionContext,
    TaskWrapper,
    WorkflowEngine,
    hookimpl,
    task,
    workflow,
)
from graflow.channels.memory import MemoryChannel
from graflow.coordination.builtin import DirectCoordinator
from graflow.exceptions import DuplicateNameError, TaskExecutionError, UnknownNameError
from graflow.plugins import (
    builtin_backends,
    builtin_caches,
    builtin_checkpoints,
    builtin_handlers,
    builtin_policies,
)
from graflow.plugins.manager import (
    BUILTIN_PLUGINS,
    LIFECYCLE_HOOKS,
    REGISTRAR_HOOKS,
    PluginHost,
    build_plugin_manager,
    version_satisfies,
)
from graflow.queue.memory import MemoryTaskQueue

HOOK_NAMES = sorted(
    name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("graflow_")
)


@pytest.fixture
def core_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """As if only graflow-core were installed: no entry points load."""
    monkeypatch.setenv("GRAFLOW_LOAD_PLUGINS", "")
    yield


# --- built-ins ------------------------------------------------------------------------------------


def test_builtins_are_registered_as_plugins_through_the_same_hooks(core_only: None) -> None:
    host = PluginHost()
    expected = {
        "graflow.builtin.handlers": builtin_handlers,
        "graflow.builtin.backends": builtin_backends,
        "graflow.builtin.policies": builtin_policies,
        "graflow.builtin.checkpoints": builtin_checkpoints,
        "graflow.builtin.caches": builtin_caches,
    }
    assert dict(BUILTIN_PLUGINS) == expected
    for name, module in expected.items():
        assert host.pm.get_plugin(name) is module
    owners = {(r.kind, r.name): r.plugin for r in host.registry}
    assert owners[("handler", "direct")] == "graflow.builtin.handlers"
    assert owners[("queue backend", "memory")] == "graflow.builtin.backends"
    assert owners[("channel backend", "memory")] == "graflow.builtin.backends"
    for coordinator in ("direct", "threading", "multiprocessing"):
        assert owners[("coordination backend", coordinator)] == "graflow.builtin.backends"
    for policy in ("strict", "best_effort", "at_least_n", "critical_tasks"):
        assert owners[("policy", policy)] == "graflow.builtin.policies"
    assert owners[("checkpoint store", "file")] == "graflow.builtin.checkpoints"
    for store in ("memory", "file"):
        assert owners[("cache store", store)] == "graflow.builtin.caches"


def test_plugin_infos_report_builtins_as_graflow_core(core_only: None) -> None:
    infos = {info.name: info for info in PluginHost().plugin_infos()}
    handlers = infos["graflow.builtin.handlers"]
    assert handlers.distribution == "graflow-core"
    assert handlers.hooks == ("graflow_register_handlers",)
    assert ("handler", "direct") in handlers.provides


# --- duplicate and unknown names -------------------------------------------------------------------


class FirstHandlerPlugin:
    @staticmethod
    @hookimpl
    def graflow_register_handlers(register: Any) -> None:
        register("shared-name", lambda config: None)


class SecondHandlerPlugin:
    @staticmethod
    @hookimpl
    def graflow_register_handlers(register: Any) -> None:
        register("shared-name", lambda config: None)


def test_duplicate_name_from_two_plugins_names_both(core_only: None) -> None:
    with pytest.raises(DuplicateNameError) as info:
        PluginHost([FirstHandlerPlugin, SecondHandlerPlugin])
    message = str(info.value)
    assert "'shared-name'" in message
    assert "FirstHandlerPlugin" in message and "SecondHandlerPlugin" in message


def test_plugin_cannot_take_a_builtin_name(core_only: None) -> None:
    class Shadow:
        @staticmethod
        @hookimpl
        def graflow_register_coordinators(register: Any) -> None:
            register("threading", DirectCoordinator)

    with pytest.raises(DuplicateNameError, match=r"graflow\.builtin\.backends"):
        PluginHost([Shadow])


@pytest.mark.parametrize(
    ("kind", "name", "package"),
    [
        ("queue backend", "redis", "graflow-redis"),
        ("channel backend", "redis", "graflow-redis"),
        ("coordination backend", "redis", "graflow-redis"),
        ("checkpoint store", "redis", "graflow-redis"),
        ("handler", "docker", "graflow-docker"),
        ("checkpoint store", "s3", "graflow-checkpoint-s3"),
    ],
)
def test_unknown_first_party_name_says_which_package_to_install(
    core_only: None, kind: str, name: str, package: str
) -> None:
    host = PluginHost()
    with pytest.raises(UnknownNameError) as info:
        host.get(kind, name)
    message = str(info.value)
    assert f"pip install {package}" in message
    assert f"no {kind} named {name!r}; installed: " in message
    assert info.value.available == host.names(kind) and info.value.available
    assert "graflow plugins" in message


@pytest.mark.parametrize(
    ("kind", "installed"),
    [
        ("handler", "direct"),
        ("queue backend", "memory"),
        ("channel backend", "memory"),
        ("coordination backend", "threading"),
        ("policy", "best_effort"),
        ("checkpoint store", "file"),
    ],
)
def test_unknown_name_lists_installed_names(kind: str, installed: str) -> None:
    host = PluginHost()
    with pytest.raises(UnknownNameError) as info:
        host.get(kind, "no-such-thing")
    assert installed in info.value.available
    assert installed in str(info.value)
    assert "pip install" not in str(info.value)
    assert isinstance(info.value, LookupError)


def test_unknown_queue_backend_fails_when_the_context_is_created(core_only: None) -> None:
    engine = WorkflowEngine()
    engine.host = PluginHost()
    with workflow("q") as wf:
        TaskWrapper("t", lambda: 1)
    with pytest.raises(UnknownNameError, match="pip install graflow-redis"):
        ExecutionContext.create(wf.graph, queue_backend="redis", engine=engine)


def test_unknown_checkpoint_scheme_of_a_path_says_what_to_install(core_only: None) -> None:
    from graflow.checkpoint.manager import store_for

    with pytest.raises(UnknownNameError, match="pip install graflow-checkpoint-s3") as info:
        store_for("s3://bucket/runs/1", host=PluginHost())
    assert "file" in info.value.available


# --- building the manager -------------------------------------------------------------------------


def test_misspelt_hook_name_fails_at_build() -> None:
    class Typo:
        @staticmethod
        @hookimpl
        def graflow_task_faild(task_id: str) -> None:
            pass

    with pytest.raises(pluggy.PluginValidationError, match="graflow_task_faild"):
        build_plugin_manager([Typo])
    with pytest.raises(pluggy.PluginValidationError):
        WorkflowEngine(plugins=[Typo])


def test_disable_plugins_blocks_entry_points_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAFLOW_DISABLE_PLUGINS", "redis, docker")
    pm = build_plugin_manager()
    assert pm.is_blocked("redis") and pm.is_blocked("docker")
    assert pm.get_plugin("redis") is None and pm.get_plugin("docker") is None
    assert pm.get_plugin("graflow.builtin.handlers") is builtin_handlers


def test_disabled_plugin_is_loaded_without_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GRAFLOW_DISABLE_PLUGINS", raising=False)
    monkeypatch.delenv("GRAFLOW_LOAD_PLUGINS", raising=False)
    names = {ep.name for ep in importlib.metadata.entry_points(group="graflow")}
    pm = build_plugin_manager()
    for name in names:
        assert pm.get_plugin(name) is not None


def test_load_plugins_empty_loads_no_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAFLOW_LOAD_PLUGINS", "")
    pm = build_plugin_manager()
    assert {name for name, _ in pm.list_name_plugin()} == {name for name, _ in BUILTIN_PLUGINS}


@pytest.mark.parametrize(
    ("version", "specifier", "expected"),
    [
        ("0.1.0", ">=0.1,<0.2", True),
        ("0.2.0", ">=0.1,<0.2", False),
        ("0.1.5", "~=0.1.0", True),
        ("0.2.0", "~=0.1.0", False),
        ("1.0", "==1.0.0", True),
        ("1.0.1", "!=1.0.1", False),
        ("2.0.0rc1", ">=2.0", True),
        ("0.0.9", ">0.0.9", False),
        ("0.1.0", "<=0.1", True),
        ("0.1.0", "", True),
        ("0.1.0", "@weird", True),
    ],
)
def test_version_satisfies(version: str, specifier: str, expected: bool) -> None:
    assert version_satisfies(version, specifier) is expected


# --- registrar hooks ------------------------------------------------------------------------------


def test_hook_graflow_register_handlers() -> None:
    class Plugin:
        @staticmethod
        @hookimpl
        def graflow_register_handlers(register: Any) -> None:
            from graflow.core.handler import TaskHandler

            class Doubling(TaskHandler):
                def execute_task(self, task: Any, context: Any) -> Any:
                    return task.run() * 2

            register("doubling", lambda config: Doubling())

    engine = WorkflowEngine(plugins=[Plugin])
    assert "doubling" in engine.host.names("handler")
    with workflow("h") as wf:
        TaskWrapper("t", lambda: 21, handler="doubling")
    assert wf.execute(engine=engine) == 42


def test_hook_graflow_register_queue_backends() -> None:
    made: list[tuple[str, dict[str, Any]]] = []

    class Plugin:
        @staticmethod
        @hookimpl
        def graflow_register_queue_backends(register: Any) -> None:
            def factory(session_id: str, config: Mapping[str, Any]) -> MemoryTaskQueue:
                made.append((session_id, dict(config)))
                return MemoryTaskQueue()

            register("custom-queue", factory)

    engine = WorkflowEngine(plugins=[Plugin])
    with workflow("q") as wf:
        TaskWrapper("a", lambda: 1) >> TaskWrapper("b", lambda: 2)
    result, ctx = wf.execute(engine=engine, queue_backend="custom-queue", config={"k": "v"}, ret_context=True)
    assert result == 2
    assert made == [(ctx.session_id, {"k": "v"})]


def test_hook_graflow_register_channel_backends() -> None:
    class Plugin:
        @staticmethod
        @hookimpl
        def graflow_register_channel_backends(register: Any) -> None:
            register("prefilled", lambda session_id, config: MemoryChannel(session_id, {"seed": 7}))

    engine = WorkflowEngine(plugins=[Plugin])
    with workflow("c") as wf:

        @task
        def read(seed: int) -> int:
            return seed

    assert wf.execute(engine=engine, channel_backend="prefilled") == 7


def test_hook_graflow_register_coordinators() -> None:
    seen: list[dict[str, Any]] = []

    class Recording(DirectCoordinator):
        def __init__(self, config: Mapping[str, Any]) -> None:
            super().__init__(config)
            seen.append(dict(config))

    class Plugin:
        @staticmethod
        @hookimpl
        def graflow_register_coordinators(register: Any) -> None:
            register("recording", Recording)

    engine = WorkflowEngine(plugins=[Plugin], config={"from_engine": 1})
    with workflow("coord") as wf:
        (TaskWrapper("a", lambda: 1) | TaskWrapper("b", lambda: 2)).with_execution("recording", option="x")
    assert wf.execute(engine=engine, config={"from_run": 2}) == {"a": 1, "b": 2}
    assert seen == [{"from_engine": 1, "from_run": 2, "option": "x"}]


def test_hook_graflow_register_policies() -> None:
    from graflow.policies import BestEffortPolicy

    class Plugin:
        @staticmethod
        @hookimpl
        def graflow_register_policies(register: Any) -> None:
            register("lenient", BestEffortPolicy)

    engine = WorkflowEngine(plugins=[Plugin])
    with workflow("p") as wf:
        (TaskWrapper("a", lambda: 1) | TaskWrapper("b", lambda: 1 / 0)).with_policy("lenient")
    assert wf.execute(engine=engine) == {"a": 1}


def test_hook_graflow_register_checkpoint_stores() -> None:
    class MemoryStore:
        def __init__(self, config: Mapping[str, Any]) -> None:
            self.config = dict(config)

    class Plugin:
        @staticmethod
        @hookimpl
        def graflow_register_checkpoint_stores(register: Any) -> None:
            register("mem", MemoryStore)

    host = PluginHost([Plugin])
    registration = host.get("checkpoint store", "mem")
    store = registration.factory({"bucket": "b"})
    assert isinstance(store, MemoryStore) and store.config == {"bucket": "b"}
    assert "file" in host.names("checkpoint store")


# --- lifecycle hooks -------------------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    @hookimpl
    def graflow_run_started(self, run_id: str, session_id: str, start_tasks: list[str]) -> None:
        self.calls.append(("run_started", {"run_id": run_id, "session_id": session_id, "start": start_tasks}))

    @hookimpl
    def graflow_run_finished(
        self, run_id: str, session_id: str, duration_s: float, steps: int, error: BaseException | None
    ) -> None:
        self.calls.append(
            ("run_finished", {"run_id": run_id, "duration_s": duration_s, "steps": steps, "error": error})
        )

    @hookimpl
    def graflow_task_started(self, run_id: str, session_id: str, task_id: str, cycle: int) -> None:
        self.calls.append(("task_started", {"task_id": task_id, "cycle": cycle, "session_id": session_id}))

    @hookimpl
    def graflow_task_succeeded(
        self, run_id: str, session_id: str, task_id: str, cycle: int, duration_s: float, result: Any
    ) -> None:
        self.calls.append(("task_succeeded", {"task_id": task_id, "duration_s": duration_s, "result": result}))

    @hookimpl
    def graflow_task_failed(
        self, run_id: str, session_id: str, task_id: str, cycle: int, duration_s: float, error: BaseException
    ) -> None:
        self.calls.append(("task_failed", {"task_id": task_id, "duration_s": duration_s, "error": error}))

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [data for name, data in self.calls if name == kind]


def run_with(recorder: object, fail: bool = False) -> ExecutionContext:
    def second() -> int:
        if fail:
            raise ValueError("second failed")
        return 2

    with workflow("hooks") as wf:
        TaskWrapper("first", lambda: 1) >> TaskWrapper("second", second)
    engine = WorkflowEngine(plugins=[recorder])
    context = wf.create_context(engine=engine)
    with contextlib.suppress(TaskExecutionError):
        engine.execute(context)
    return context


def test_hook_graflow_run_started() -> None:
    recorder = Recorder()
    context = run_with(recorder)
    (call,) = recorder.of("run_started")
    assert call["session_id"] == context.session_id
    assert call["start"] == ["first"]
    assert recorder.calls[0][0] == "run_started"


def test_hook_graflow_run_finished() -> None:
    recorder = Recorder()
    run_with(recorder)
    (ok,) = recorder.of("run_finished")
    assert ok["error"] is None and ok["steps"] == 2 and ok["duration_s"] >= 0
    assert ok["run_id"] == recorder.of("run_started")[0]["run_id"]
    assert recorder.calls[-1][0] == "run_finished"
    failing = Recorder()
    run_with(failing, fail=True)
    (bad,) = failing.of("run_finished")
    assert isinstance(bad["error"], TaskExecutionError)


def test_hook_graflow_task_started() -> None:
    recorder = Recorder()
    context = run_with(recorder)
    assert [c["task_id"] for c in recorder.of("task_started")] == ["first", "second"]
    assert {c["cycle"] for c in recorder.of("task_started")} == {1}
    assert {c["session_id"] for c in recorder.of("task_started")} == {context.session_id}


def test_hook_graflow_task_succeeded() -> None:
    recorder = Recorder()
    run_with(recorder)
    succeeded = recorder.of("task_succeeded")
    assert [(c["task_id"], c["result"]) for c in succeeded] == [("first", 1), ("second", 2)]
    assert all(c["duration_s"] >= 0 for c in succeeded)


def test_hook_graflow_task_failed() -> None:
    recorder = Recorder()
    run_with(recorder, fail=True)
    (failed,) = recorder.of("task_failed")
    assert failed["task_id"] == "second"
    assert isinstance(failed["error"], ValueError) and str(failed["error"]) == "second failed"
    assert failed["duration_s"] >= 0
    names = [name for name, _ in recorder.calls]
    assert names.index("task_failed") < names.index("run_finished")


def test_hook_implementations_may_take_a_subset_of_arguments() -> None:
    seen: list[Any] = []

    class Minimal:
        @staticmethod
        @hookimpl
        def graflow_task_failed(task_id: str, error: BaseException) -> None:
            seen.append((task_id, type(error).__name__))

        @staticmethod
        @hookimpl
        def graflow_task_succeeded(task_id: str) -> None:
            seen.append(task_id)

        @staticmethod
        @hookimpl
        def graflow_run_finished() -> None:
            seen.append("finished")

    run_with(Minimal, fail=True)
    assert seen == ["first", ("second", "ValueError"), "finished"]


def test_lifecycle_hooks_see_group_members_and_iterations() -> None:
    recorder = Recorder()
    with workflow("members") as wf:

        @task(inject_context=True)
        def looper(ctx: TaskExecutionContext) -> int:
            if ctx.cycle_count < 2:
                ctx.next_iteration()
            return ctx.cycle_count

        (looper | TaskWrapper("other", lambda: 0)).with_execution("threading")
    wf.execute(engine=WorkflowEngine(plugins=[recorder]))
    started = sorted((c["task_id"], c["cycle"]) for c in recorder.of("task_started"))
    assert started == [("looper", 1), ("looper", 2), ("other", 1)]


def test_unused_lifecycle_hooks_are_not_looked_up_per_task(core_only: None) -> None:
    host = PluginHost()
    assert set(host.lifecycle) == set(LIFECYCLE_HOOKS)
    assert all(hook is None for hook in host.lifecycle.values())
    assert PluginHost([Recorder()]).lifecycle["graflow_task_started"] is not None


# --- meta-tests (datasette style) ------------------------------------------------------------------


def test_every_hookspec_has_a_docstring() -> None:
    assert set(HOOK_NAMES) == set(REGISTRAR_HOOKS) | set(LIFECYCLE_HOOKS)
    for name in HOOK_NAMES:
        doc = inspect.getdoc(getattr(hookspecs, name))
        assert doc and len(doc) > 20, f"hookspec {name} has no docstring"


def test_plugin_hooks_have_tests() -> None:
    """Every hookspec has a test named ``test_hook_<hook name>`` somewhere in tests/core."""
    defined: set[str] = set()
    for path in Path(__file__).parent.glob("test_*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        defined |= {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
    missing = [name for name in HOOK_NAMES if f"test_hook_{name}" not in defined]
    assert missing == [], f"hooks without a test_hook_<name> test: {missing}"
