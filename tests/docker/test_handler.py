"""DockerTaskHandler against the stand-in engine of conftest.py: protocol, effects on the host, errors.

The "container" has only the stdlib and cloudpickle, like the real image, so everything shipped
here proves it needs no graflow inside. tests/integration/test_docker_*.py repeat the important
cases on a real Docker engine.
"""

from __future__ import annotations

import pickle
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

import graflow
from graflow import TaskExecutionContext, TaskHandler, TaskWrapper, WorkflowEngine, task, workflow
from graflow.exceptions import RemoteTaskError, SerializationError, TaskExecutionError, TaskTimeoutError
from graflow.testing import HandlerSuite
from graflow_docker import (
    ContainerOOMError,
    ContainerStartError,
    DockerImageMismatchError,
    DockerImageNotFoundError,
    DockerTaskHandler,
    DockerUnavailableError,
    TaskLoadError,
)

IMAGE = "fake-image:latest"  # the image the fake engine of conftest.py has


class Boom(Exception):
    """A user-defined exception: its type must survive the trip back."""


def run_one(handler: DockerTaskHandler, fn: Any, *, channel: dict[str, Any] | None = None, **options: Any) -> Any:
    """Run ``fn`` as the only task of a workflow, with ``handler`` as "box"; returns (result, context)."""
    engine = WorkflowEngine()
    engine.register_handler("box", handler)
    with workflow("one") as wf:
        node = TaskWrapper("job", fn, handler="box", **options)
        wf.add(node)
    ctx = wf.create_context("job", engine=engine)
    for key, value in (channel or {}).items():
        ctx.channel.set(key, value)
    return engine.execute(ctx), ctx


@pytest.fixture
def handler(fake_docker: Any) -> DockerTaskHandler:
    return DockerTaskHandler(image=IMAGE, client=fake_docker)


class TestHandlerSuiteInAnys(HandlerSuite):
    @pytest.fixture
    def handler(self, fake_docker: Any) -> TaskHandler:
        return DockerTaskHandler(image=IMAGE, client=fake_docker)


# --- what travels -----------------------------------------------------------------------------------


def test_lambda_with_closure_runs_and_returns(handler: DockerTaskHandler, fake_docker: Any) -> None:
    factor = 7
    result, _ = run_one(handler, lambda: {"answer": factor * 6, "python": sys.version_info[:2]})
    assert result == {"answer": 42, "python": sys.version_info[:2]}
    assert len(fake_docker.created) == 1 and fake_docker.created[0].removed


def test_functions_and_classes_from_the_users_own_module_ship_by_value(
    handler: DockerTaskHandler, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "my_pipeline_steps.py").write_text(
        textwrap.dedent(
            """
            import dataclasses

            @dataclasses.dataclass
            class Point:
                x: int
                y: int

            def shift(p):
                return Point(p.x + 1, p.y + 1)

            def work():
                return shift(Point(1, 2))
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import my_pipeline_steps  # type: ignore[import-not-found]

    result, _ = run_one(handler, my_pipeline_steps.work)
    assert type(result) is my_pipeline_steps.Point  # the host's class, not a copy
    assert result == my_pipeline_steps.Point(2, 3)


def test_task_prints_reach_the_host_and_not_the_protocol(
    handler: DockerTaskHandler, capsys: pytest.CaptureFixture[str]
) -> None:
    def chatty() -> int:
        print("hello from inside")
        print("warning inside", file=sys.stderr)
        return 7

    result, _ = run_one(handler, chatty)
    assert result == 7
    out, err = capsys.readouterr()
    assert "hello from inside" in out and "warning inside" in err


def test_exception_keeps_type_message_and_the_container_traceback(handler: DockerTaskHandler) -> None:
    def explode_inside() -> None:
        raise Boom("bad input 42")

    with pytest.raises(TaskExecutionError) as info:
        run_one(handler, explode_inside)
    error = info.value.original
    assert type(error) is Boom
    assert str(error) == "bad input 42"
    note = "\n".join(error.__notes__)
    assert "Traceback inside the Docker container" in note
    assert "explode_inside" in note and "Boom: bad input 42" in note


def test_exception_that_cannot_be_pickled_arrives_as_remote_task_error(handler: DockerTaskHandler) -> None:
    def fail_with_lock() -> None:
        error = RuntimeError("holding a lock")
        error.lock = threading.Lock()  # type: ignore[attr-defined]
        raise error

    with pytest.raises(TaskExecutionError) as info:
        run_one(handler, fail_with_lock)
    error = info.value.original
    assert isinstance(error, RemoteTaskError)
    assert error.remote_type == "RuntimeError" and "holding a lock" in str(error)
    assert "fail_with_lock" in error.remote_traceback


def test_result_that_cannot_be_pickled_is_a_serialization_error(handler: DockerTaskHandler) -> None:
    with pytest.raises(TaskExecutionError) as info:
        run_one(handler, lambda: (i for i in range(3)))
    assert isinstance(info.value.original, SerializationError)
    assert "result of task 'job' cannot be sent back" in str(info.value.original)


def test_unpicklable_argument_is_named_before_any_container_starts(
    handler: DockerTaskHandler, fake_docker: Any
) -> None:
    with pytest.raises(TaskExecutionError) as info:
        run_one(handler, lambda lock: None, kwargs={"lock": threading.Lock()})
    assert isinstance(info.value.original, SerializationError)
    assert "argument 'lock' of task 'job'" in str(info.value.original)
    assert fake_docker.created == []


def test_package_missing_in_the_image_is_a_load_error(handler: DockerTaskHandler) -> None:
    import pluggy

    marker = pluggy.HookimplMarker("x")  # pluggy is installed here, not in the "image"
    with pytest.raises(TaskExecutionError) as info:
        run_one(handler, lambda: marker)
    error = info.value.original
    assert isinstance(error, TaskLoadError)
    assert "pluggy" in str(error) and "installed in the image" in str(error)


# --- effects on the host ----------------------------------------------------------------------------


def test_channel_reads_host_values_and_writes_come_back(handler: DockerTaskHandler) -> None:
    def use_channel(context: TaskExecutionContext) -> list[str]:
        channel = context.get_channel()
        channel.set("copy", channel.get("seed") * 2)
        channel.append("log", "container")
        channel.update("total", lambda v: v + 10, 0)
        channel.delete("gone")
        context.get_channel("ns").set("inner", 1)
        return sorted(channel.keys())

    keys, ctx = run_one(handler, use_channel, inject_context=True, channel={"seed": 21, "log": ["host"], "gone": 1})
    assert keys == ["copy", "log", "ns::inner", "seed", "total"]
    assert ctx.channel.items() == {
        "seed": 21,
        "log": ["host", "container"],
        "copy": 42,
        "total": 10,
        "ns::inner": 1,
    }


def test_channel_writes_survive_a_failing_task_like_direct_ones(handler: DockerTaskHandler) -> None:
    def write_then_fail(context: TaskExecutionContext) -> None:
        context.get_channel().set("progress", "half")
        raise Boom("after writing")

    engine = WorkflowEngine()
    engine.register_handler("box", handler)
    with workflow("fail") as wf:
        wf.add(TaskWrapper("job", write_then_fail, handler="box", inject_context=True))
    ctx = wf.create_context("job", engine=engine)
    with pytest.raises(TaskExecutionError):
        engine.execute(ctx)
    assert ctx.channel.get("progress") == "half"


def test_unpicklable_channel_value_fails_only_the_task_that_reads_it(handler: DockerTaskHandler) -> None:
    lock = threading.Lock()
    result, _ = run_one(
        handler,
        lambda context: context.get_channel().get("ok"),
        inject_context=True,
        channel={"ok": 1, "lock": lock},
    )
    assert result == 1
    with pytest.raises(TaskExecutionError) as info:
        run_one(
            handler,
            lambda context: context.get_channel().get("lock"),
            inject_context=True,
            channel={"lock": lock},
        )
    assert "channel key 'lock' could not be shipped" in str(info.value.original)


@task(id="followup")
def followup() -> str:
    return "followed"


def test_next_task_with_a_workflow_task_a_new_taskwrapper_and_an_id(handler: DockerTaskHandler) -> None:
    def steer(context: TaskExecutionContext) -> str:
        context.next_task(followup)  # a task of the host's workflow, captured as a global
        context.next_task(TaskWrapper("made_inside", lambda: "made in the container"))
        context.next_task(graflow.TaskWrapper("via_module", lambda: "via graflow module"))
        return "steered"

    engine = WorkflowEngine()
    engine.register_handler("box", handler)
    with workflow("steer") as wf:
        wf.add(TaskWrapper("job", steer, handler="box", inject_context=True))
    _, ctx = wf.execute("job", engine=engine, ret_context=True)
    assert ctx.get_result("job") == "steered"
    assert ctx.get_result("followup") == "followed"
    assert ctx.get_result("made_inside") == "made in the container"
    assert ctx.get_result("via_module") == "via graflow module"
    assert isinstance(ctx.graph.nodes["made_inside"], TaskWrapper)


def test_a_task_made_in_the_container_keeps_its_retry_options(handler: DockerTaskHandler) -> None:
    def steer(context: TaskExecutionContext) -> str:
        context.next_task(TaskWrapper("retried", lambda: "ok", retries=2, retry_delay=0.01, retry_on=OSError))
        return "steered"

    _, ctx = run_one(handler, steer, inject_context=True)
    made = ctx.graph.nodes["retried"]
    assert isinstance(made, TaskWrapper) and made.attempts is not None
    assert (made.attempts.retries, made.attempts.retry_delay, made.attempts.retry_on) == (2, 0.01, (OSError,))
    assert ctx.get_result("retried") == "ok"


def test_next_iteration_inside_loops_on_the_host(handler: DockerTaskHandler) -> None:
    def count(context: TaskExecutionContext, n: int = 0) -> int:
        if n < 2:
            context.next_iteration(n + 1)
        return n

    result, ctx = run_one(handler, count, inject_context=True)
    assert result == 2 and ctx.cycle_counts["job"] == 3


def test_terminate_workflow_inside_ends_the_run(handler: DockerTaskHandler) -> None:
    engine = WorkflowEngine()
    engine.register_handler("box", handler)
    with workflow("stop") as wf:
        first = TaskWrapper(
            "first", lambda context: context.terminate_workflow("done"), handler="box", inject_context=True
        )
        never = TaskWrapper("never", lambda: "ran")
        first >> never
    _, ctx = wf.execute(engine=engine, ret_context=True)
    assert "never" not in ctx.results


def test_docker_and_direct_tasks_mix_and_parallel_members_add_up(handler: DockerTaskHandler) -> None:
    engine = WorkflowEngine()
    engine.register_handler("box", handler)

    def bump(context: TaskExecutionContext) -> int:
        return context.get_channel().increment("hits")

    with workflow("mixed") as wf:
        start = TaskWrapper("start", lambda: 1)
        members = [TaskWrapper(f"m{i}", bump, handler="box", inject_context=True) for i in range(3)]
        group = (members[0] | members[1] | members[2]).with_execution("threading")
        end = TaskWrapper("end", lambda context: context.get_channel().get("hits"), inject_context=True)
        start >> group >> end
    assert wf.execute(engine=engine) == 3


# --- safe_output: the host never unpickles what the container wrote ---------------------------------


def test_safe_output_returns_json_results_and_channel_writes(fake_docker: Any) -> None:
    handler = DockerTaskHandler(image=IMAGE, client=fake_docker, safe_output=True)

    def sandboxed(context: TaskExecutionContext) -> dict[str, Any]:
        context.get_channel().set("out", [1, 2])
        context.get_channel().update("n", lambda v: v + 1, 0)
        return {"ok": True}

    result, ctx = run_one(handler, sandboxed, inject_context=True)
    assert result == {"ok": True}
    assert ctx.channel.get("out") == [1, 2] and ctx.channel.get("n") == 1


def test_safe_output_reports_errors_as_remote_task_errors(fake_docker: Any) -> None:
    handler = DockerTaskHandler(image=IMAGE, client=fake_docker, safe_output=True)

    def fail() -> None:
        raise Boom("untrusted failure")

    with pytest.raises(TaskExecutionError) as info:
        run_one(handler, fail)
    assert isinstance(info.value.original, RemoteTaskError)
    assert info.value.original.remote_type == "Boom"
    with pytest.raises(TaskExecutionError) as info:
        run_one(handler, lambda: {1, 2})
    assert isinstance(info.value.original, SerializationError)


# --- clear errors -----------------------------------------------------------------------------------


def test_timeout_kills_and_removes_the_container(fake_docker: Any) -> None:
    handler = DockerTaskHandler(image=IMAGE, client=fake_docker, timeout=0.5)

    def slow() -> None:
        import time

        time.sleep(30)

    with pytest.raises(TaskExecutionError) as info:
        run_one(handler, slow)
    assert isinstance(info.value.original, TaskTimeoutError)
    assert "timeout of 0.5s" in str(info.value.original)
    assert fake_docker.created[0].removed


def test_a_tasks_own_timeout_kills_each_attempts_container(fake_docker: Any) -> None:
    """``@task(timeout=)`` is enforced by the handler (the shorter of its and the task's timeout)."""
    handler = DockerTaskHandler(image=IMAGE, client=fake_docker, timeout=300)
    assert handler.enforces_timeout and handler.supports_timeout

    def slow() -> None:
        import time

        time.sleep(30)

    with pytest.raises(TaskExecutionError) as info:
        run_one(handler, slow, timeout=0.5, retries=1, retry_delay=0)
    assert isinstance(info.value.original, TaskTimeoutError)
    assert "timeout of 0.5s" in str(info.value.original)
    assert len(fake_docker.created) == 2  # a fresh container per attempt, each killed and removed
    assert all(container.removed for container in fake_docker.created)


def test_oom_kill_is_reported_as_oom(fake_docker: Any) -> None:
    def killed_by_kernel(container: Any) -> None:
        container.attrs["State"]["OOMKilled"] = True

    fake_docker.on_start = killed_by_kernel
    fake_docker.exit_code = 137
    handler = DockerTaskHandler(image=IMAGE, client=fake_docker, mem_limit="32m")
    with pytest.raises(TaskExecutionError) as info:
        run_one(handler, lambda: bytearray(10**9))
    error = info.value.original
    assert isinstance(error, ContainerOOMError) and isinstance(error, MemoryError)
    assert "OOM" in str(error) and "mem_limit='32m'" in str(error)


def test_container_that_dies_without_reporting_shows_its_output(fake_docker: Any) -> None:
    fake_docker.on_start = lambda container: None
    fake_docker.exit_code = 1
    fake_docker.logs = b"python3: cannot open file"
    handler = DockerTaskHandler(image=IMAGE, client=fake_docker)
    with pytest.raises(TaskExecutionError) as info:
        run_one(handler, lambda: 1)
    error = info.value.original
    assert isinstance(error, ContainerStartError) and error.exit_code == 1
    assert "python3: cannot open file" in str(error)


def test_missing_image_names_the_build_script_and_starts_nothing(fake_docker: Any) -> None:
    handler = DockerTaskHandler(image="nowhere:1", client=fake_docker)
    with pytest.raises(TaskExecutionError) as info:
        run_one(handler, lambda: 1)
    error = info.value.original
    assert isinstance(error, DockerImageNotFoundError)
    assert "bash scripts/build-test-image.sh" in str(error) and "docker pull nowhere:1" in str(error)
    assert fake_docker.created == []


def test_no_docker_daemon_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-daemon.sock")
    handler = DockerTaskHandler(image="any:1")
    with pytest.raises(DockerUnavailableError, match="no Docker daemon answers at unix://"):
        handler.check_image()


@pytest.mark.parametrize(
    ("versions", "expected"),
    [
        ({"python": "3.99"}, "runs Python {py} but this host runs Python 3.99"),
        ({"cloudpickle": "0.0.1"}, "has cloudpickle {cp} but this host has cloudpickle 0.0.1"),
    ],
)
def test_image_with_other_python_or_cloudpickle_is_refused_before_loading(
    handler: DockerTaskHandler, monkeypatch: pytest.MonkeyPatch, versions: dict[str, str], expected: str
) -> None:
    import cloudpickle

    from graflow_docker import _protocol

    real = _protocol.host_versions()
    monkeypatch.setattr(_protocol, "host_versions", lambda: {**real, **versions})
    ran = []
    with pytest.raises(TaskExecutionError) as info:
        run_one(handler, lambda: ran.append(1))
    error = info.value.original
    assert isinstance(error, DockerImageMismatchError)
    py = "{}.{}".format(*sys.version_info[:2])
    assert expected.format(py=py, cp=cloudpickle.__version__) in str(error)
    assert "scripts/build-test-image.sh" in str(error)


OTHER_PYTHONS = sorted(Path("/root/.pyenv/versions").glob("3.[0-9]*/bin/python3"))


@pytest.mark.parametrize(
    "python", [p for p in OTHER_PYTHONS if not p.parent.parent.name.startswith(("3.6.", "3.11."))], ids=str
)
def test_a_real_older_or_newer_python_reports_its_version(
    handler: DockerTaskHandler, fake_docker: Any, python: Path
) -> None:
    """The runner keeps to Python 3.7 syntax so another interpreter can say what it is."""
    fake_docker.python = str(python)
    with pytest.raises(TaskExecutionError) as info:
        run_one(handler, lambda: 1)
    error = info.value.original
    assert isinstance(error, DockerImageMismatchError) and error.component == "python"
    assert error.image_version == python.parent.parent.name.rsplit(".", 1)[0]


def test_image_without_cloudpickle_is_refused(handler: DockerTaskHandler, fake_docker: Any, tmp_path: Path) -> None:
    fake_docker.site = str(tmp_path)  # an empty site: no cloudpickle
    with pytest.raises(TaskExecutionError) as info:
        run_one(handler, lambda: 1)
    error = info.value.original
    assert isinstance(error, DockerImageMismatchError) and error.image_version is None
    assert "has no cloudpickle" in str(error)


def test_handler_pickles_with_its_settings_not_its_client(handler: DockerTaskHandler) -> None:
    copy = pickle.loads(pickle.dumps(handler))
    assert copy.options == handler.options
    assert copy._client is None
