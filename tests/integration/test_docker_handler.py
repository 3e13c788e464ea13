"""DockerTaskHandler on a real Docker engine with the image of scripts/build-test-image.sh.

Every test checks afterwards that none of its containers survived (``no_leftover_containers``).
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from graflow import TaskExecutionContext, TaskHandler, TaskWrapper, WorkflowEngine, task, workflow
from graflow.exceptions import TaskExecutionError, TaskTimeoutError
from graflow.testing import HandlerSuite
from graflow_docker import (
    ContainerOOMError,
    ContainerStartError,
    DockerImageMismatchError,
    DockerImageNotFoundError,
    DockerTaskHandler,
)

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("no_leftover_containers")]


class Boom(Exception):
    pass


def run_one(handler: DockerTaskHandler, fn: Any, **options: Any) -> tuple[Any, Any]:
    engine = WorkflowEngine()
    engine.register_handler("box", handler)
    with workflow("one") as wf:
        wf.add(TaskWrapper("job", fn, handler="box", **options))
    return wf.execute("job", engine=engine, ret_context=True)


def error_of(handler: DockerTaskHandler, fn: Any, **options: Any) -> BaseException:
    with pytest.raises(TaskExecutionError) as info:
        run_one(handler, fn, **options)
    return info.value.original


class TestHandlerSuiteInDocker(HandlerSuite):
    @pytest.fixture
    def handler(self, docker_image: str) -> TaskHandler:
        return DockerTaskHandler(image=docker_image)


# --- the spec's examples ---------------------------------------------------------------------------


def test_spec_basic_usage_runs_in_a_container(docker_image: str) -> None:
    engine = WorkflowEngine()
    engine.register_handler("docker", DockerTaskHandler(image=docker_image))

    @task(handler="docker")
    def isolated_task() -> tuple[str, str]:
        """Runs in Docker container with complete isolation."""
        import socket
        import sys

        return sys.version, socket.gethostname()

    with workflow("spec_basic") as wf:
        wf.add(isolated_task)
    version, hostname = wf.execute(engine=engine)
    assert version.startswith("{}.{}.".format(*sys.version_info[:2]))
    assert hostname != os.uname().nodename  # a container's own hostname


def test_spec_environment_variables(docker_image: str) -> None:
    handler = DockerTaskHandler(image=docker_image, environment={"API_KEY": "secret", "DEBUG": "1"})
    result, _ = run_one(handler, lambda: (os.environ["API_KEY"], os.environ["DEBUG"]))
    assert result == ("secret", "1")


def test_spec_volume_mounts_read_only_and_read_write(docker_image: str, tmp_path: Path) -> None:
    data, output = tmp_path / "data", tmp_path / "output"
    data.mkdir()
    output.mkdir()
    (data / "input.txt").write_text("from the host")
    handler = DockerTaskHandler(
        image=docker_image,
        volumes={
            str(data): {"bind": "/container/data", "mode": "ro"},
            str(output): {"bind": "/output", "mode": "rw"},
        },
    )

    def use_volumes() -> tuple[str, int]:
        text = Path("/container/data/input.txt").read_text()
        try:
            open("/container/data/new.txt", "w").close()
            ro_errno = 0
        except OSError as exc:
            ro_errno = exc.errno or -1
        with open("/output/result.txt", "w") as f:
            f.write(text.upper())
        return text, ro_errno

    (text, ro_errno), _ = run_one(handler, use_volumes)
    assert text == "from the host"
    assert ro_errno == errno.EROFS
    assert not (data / "new.txt").exists()
    assert (output / "result.txt").read_text() == "FROM THE HOST"


def _network_probe() -> tuple[list[str], int]:
    import socket

    try:
        socket.create_connection(("172.17.0.1", 9), timeout=2).close()
        code = 0
    except OSError as exc:
        code = exc.errno or -1
    return sorted(os.listdir("/sys/class/net")), code


def test_spec_network_mode_none_cuts_the_network(docker_image: str) -> None:
    (interfaces, code), _ = run_one(DockerTaskHandler(image=docker_image, network_mode="none"), _network_probe)
    assert interfaces == ["lo"]
    assert code == errno.ENETUNREACH
    (interfaces, _), _ = run_one(DockerTaskHandler(image=docker_image, network_mode="bridge"), _network_probe)
    assert "eth0" in interfaces  # the same probe sees a network by default


def test_spec_cpu_limits_reach_the_container(docker_image: str, docker_client: Any) -> None:
    handler = DockerTaskHandler(image=docker_image, cpu_period=100000, cpu_quota=50000, mem_limit="256m")

    def limits() -> tuple[str, str]:
        def read(*paths: str) -> str:
            for path in paths:
                if os.path.exists(path):
                    return open(path).read().strip()
            return ""

        cpu = read("/sys/fs/cgroup/cpu.max", "/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
        mem = read("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
        return cpu, mem

    (cpu, mem), _ = run_one(handler, limits)
    assert cpu.split()[0] == "50000"
    assert int(mem) == 256 * 1024 * 1024


def test_auto_remove_containers_still_report_and_vanish(docker_image: str) -> None:
    result, _ = run_one(DockerTaskHandler(image=docker_image, auto_remove=True), lambda: "reported")
    assert result == "reported"


# --- round trips -----------------------------------------------------------------------------------


def test_exception_comes_back_with_type_message_and_container_traceback(docker_image: str) -> None:
    def fails_inside() -> None:
        raise Boom("bad row 7")

    error = error_of(DockerTaskHandler(image=docker_image), fails_inside)
    assert type(error) is Boom and str(error) == "bad row 7"
    note = "\n".join(error.__notes__)
    assert "Traceback inside the Docker container" in note and "fails_inside" in note


def test_next_task_and_channel_writes_inside_apply_on_the_host(docker_image: str) -> None:
    def steer(context: TaskExecutionContext) -> str:
        context.get_channel().set("from_container", [1, 2, 3])
        context.next_task(TaskWrapper("made_inside", lambda: "dynamic"))
        return "ok"

    _, ctx = run_one(DockerTaskHandler(image=docker_image), steer, inject_context=True)
    assert ctx.channel.get("from_container") == [1, 2, 3]
    assert ctx.get_result("made_inside") == "dynamic"


def test_docker_and_direct_tasks_mix_and_docker_members_run_in_parallel(docker_image: str) -> None:
    engine = WorkflowEngine()
    engine.register_handler("box", DockerTaskHandler(image=docker_image))

    def member(context: TaskExecutionContext) -> tuple[float, float]:
        started = time.time()
        context.get_channel().increment("hits")
        time.sleep(1.5)
        return started, time.time()

    with workflow("mixed") as wf:
        start = TaskWrapper("start", lambda context: context.get_channel().set("hits", 0), inject_context=True)
        members = [TaskWrapper(f"m{i}", member, handler="box", inject_context=True) for i in range(3)]
        group = (members[0] | members[1] | members[2]).with_execution("threading")
        end = TaskWrapper("end", lambda context: context.get_channel().get("hits"), inject_context=True)
        start >> group >> end
    result, ctx = wf.execute(engine=engine, ret_context=True)
    assert result == 3
    spans = [ctx.get_result(f"m{i}") for i in range(3)]
    assert max(s for s, _ in spans) < min(e for _, e in spans), f"members did not overlap: {spans}"


def test_docker_members_of_a_multiprocessing_group_run_from_worker_processes(docker_image: str) -> None:
    """The handler travels to the pool's processes with the request (settings, not the client)."""
    engine = WorkflowEngine()
    engine.register_handler("box", DockerTaskHandler(image=docker_image))
    with workflow("mp") as wf:
        members = [
            TaskWrapper(
                f"w{i}",
                lambda context: context.get_channel().increment("n"),
                handler="box",
                inject_context=True,
            )
            for i in range(2)
        ]
        wf.add((members[0] | members[1]).with_execution("multiprocessing", max_workers=2))
    _, ctx = wf.execute(engine=engine, ret_context=True)
    assert ctx.channel.get("n") == 2


# --- clear errors ----------------------------------------------------------------------------------


def test_timeout_raises_task_timeout_error_and_removes_the_container(docker_image: str) -> None:
    started = time.monotonic()
    error = error_of(DockerTaskHandler(image=docker_image, timeout=2), lambda: time.sleep(60))
    assert isinstance(error, TaskTimeoutError)
    assert time.monotonic() - started < 20


def test_a_tasks_own_timeout_kills_its_container_and_a_retry_gets_a_fresh_one(docker_image: str) -> None:
    """``@task(timeout=2, retries=1)`` on a handler without a timeout of its own."""
    error = error_of(DockerTaskHandler(image=docker_image), lambda: time.sleep(60), timeout=2, retries=1, retry_delay=0)
    assert isinstance(error, TaskTimeoutError) and "timeout of 2.0s" in str(error)
    assert "failed after 2 attempts" in "\n".join(error.__notes__)  # no_leftover_containers checks the rest


@pytest.mark.slow
def test_memory_limit_oom_is_reported_as_oom(docker_image: str) -> None:
    handler = DockerTaskHandler(image=docker_image, mem_limit="64m", run_options={"memswap_limit": "64m"})
    error = error_of(handler, lambda: len(b"x" * (512 * 1024 * 1024)))
    assert isinstance(error, ContainerOOMError)
    assert "OOM" in str(error) and "mem_limit='64m'" in str(error)


def test_missing_image_fails_before_running_and_names_the_build_script() -> None:
    error = error_of(DockerTaskHandler(image="graflow-no-such-image:0"), lambda: 1)
    assert isinstance(error, DockerImageNotFoundError)
    assert "bash scripts/build-test-image.sh" in str(error)


def test_image_without_the_interpreter_says_so(docker_image: str) -> None:
    error = error_of(DockerTaskHandler(image=docker_image, python="python9"), lambda: 1)
    assert isinstance(error, ContainerStartError)
    assert "'python9' on its PATH" in str(error)


def test_python_version_mismatch_is_refused_before_the_task_runs(
    docker_image: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from graflow_docker import _protocol

    real = _protocol.host_versions()
    monkeypatch.setattr(_protocol, "host_versions", lambda: {**real, "python": "3.99"})
    marker = tmp_path / "ran"
    handler = DockerTaskHandler(image=docker_image, volumes={str(tmp_path): {"bind": "/out", "mode": "rw"}})
    error = error_of(handler, lambda: open("/out/ran", "w").close())
    assert isinstance(error, DockerImageMismatchError)
    assert f"runs Python {real['python']} but this host runs Python 3.99" in str(error)
    assert not marker.exists()


# --- Ctrl-C: the host run is interrupted ------------------------------------------------------------

INTERRUPTED_RUN = """
import sys, time
from graflow import TaskWrapper, WorkflowEngine, workflow
from graflow_docker import DockerTaskHandler

engine = WorkflowEngine()
engine.register_handler("box", DockerTaskHandler(image=sys.argv[1]))
with workflow("interrupted") as wf:
    if sys.argv[2] == "group":
        # The plugin's "docker" handler, built lazily inside the group's worker threads.
        a = TaskWrapper("a", lambda: time.sleep(120), handler="docker")
        b = TaskWrapper("b", lambda: time.sleep(120), handler="docker")
        wf.add((a | b).with_execution("threading"))
    else:
        wf.add(TaskWrapper("sleepy", lambda: time.sleep(120), handler="box"))
try:
    wf.execute(engine=engine)
except BaseException as exc:
    # The engine reports a task's KeyboardInterrupt as TaskExecutionError(original=...).
    if isinstance(getattr(exc, "original", exc), KeyboardInterrupt):
        sys.exit(130)
    raise
"""


@pytest.mark.slow
@pytest.mark.parametrize("shape", ["single", "group"])
def test_ctrl_c_on_the_host_leaves_no_container(
    docker_image: str, graflow_containers: Callable[[int | None], list[Any]], tmp_path: Path, shape: str
) -> None:
    script = tmp_path / "interrupted.py"
    script.write_text(textwrap.dedent(INTERRUPTED_RUN))
    expected = 1 if shape == "single" else 2
    env = {**os.environ, "GRAFLOW_DOCKER_IMAGE": docker_image}
    proc = subprocess.Popen([sys.executable, str(script), docker_image, shape], env=env)
    try:
        deadline = time.monotonic() + 60
        while len([c for c in graflow_containers(proc.pid) if c.status == "running"]) < expected:
            assert proc.poll() is None, "the run ended before its containers started"
            assert time.monotonic() < deadline, "containers did not start"
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 130
        assert graflow_containers(proc.pid) == []
    finally:
        if proc.poll() is None:
            proc.kill()
        for container in graflow_containers(proc.pid):  # never leak into other tests
            container.remove(force=True)


# --- found by review: a task must not be able to stall the host, and nothing it wrote may be lost ---


@pytest.mark.timeout(60)
def test_a_named_pipe_planted_in_place_of_an_output_file_does_not_block_the_host(docker_image: str) -> None:
    def plant_fifo() -> int:
        os.unlink("/graflow-io/stdout")
        os.mkfifo("/graflow-io/stdout")
        return 1

    handler = DockerTaskHandler(image=docker_image, safe_output=True, timeout=10)
    started = time.monotonic()
    result, _ = run_one(handler, plant_fifo)
    assert result == 1
    assert time.monotonic() - started < 10


def test_channel_writes_survive_an_exception_the_host_cannot_rebuild(docker_image: str) -> None:
    def fails_after_writing(ctx: TaskExecutionContext) -> None:
        class CodeError(Exception):  # two required arguments: unpickling calls CodeError(message)
            def __init__(self, code: int, detail: str) -> None:
                super().__init__(f"{code}: {detail}")

        ctx.get_channel().set("progress", "half")
        raise CodeError(42, "upstream down")

    engine = WorkflowEngine()
    engine.register_handler("box", DockerTaskHandler(image=docker_image))
    with workflow("exc_channel") as wf:
        wf.add(TaskWrapper("job", fails_after_writing, handler="box", inject_context=True))
    ctx = wf.create_context()
    with pytest.raises(TaskExecutionError, match="CodeError: 42: upstream down"):
        engine.execute(ctx)
    assert ctx.channel.get("progress") == "half"


def test_a_task_that_leaves_a_thread_running_ends_when_it_returns(docker_image: str) -> None:
    def leaves_a_thread() -> str:
        import threading

        threading.Thread(target=time.sleep, args=(30,)).start()  # not a daemon
        return "done"

    started = time.monotonic()
    result, _ = run_one(DockerTaskHandler(image=docker_image, timeout=20), leaves_a_thread)
    assert result == "done"
    assert time.monotonic() - started < 15
