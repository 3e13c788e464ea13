"""A run on the Redis queue and channel resumes against Redis: the backends are rebuilt through the
plugin registries, the queue holds exactly the checkpoint's pending tasks and the channel its data."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from graflow import TaskExecutionContext, TaskWrapper, WorkflowEngine, workflow
from graflow.core.checkpoint import CheckpointManager
from graflow.queue.base import TaskSpec

pytestmark = pytest.mark.redis


def _missing(reason: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (CI=true: services must be up)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        _missing("redis-server is not installed; `bash scripts/services.sh` installs it")
    pytest.importorskip("graflow_redis")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [str(binary), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                _missing(f"redis-server did not start on port {port}")
            time.sleep(0.02)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_redis_backed_run_resumes_against_redis(redis_url: str, tmp_path: Path) -> None:
    path = str(tmp_path / "redis_run")

    def first(context: TaskExecutionContext) -> int:
        context.get_channel().set("progress", "first done")
        context.checkpoint(path=path)
        return 1

    with workflow("redis_resume") as wf:
        TaskWrapper("first", first, inject_context=True) >> TaskWrapper("second", lambda first: first + 1)
    config = {"redis_url": redis_url}
    expected, context = wf.execute(ret_context=True, queue_backend="redis", channel_backend="redis", config=config)

    context.get_channel().set("progress", "changed after the checkpoint")  # the crashed run went on
    context.queue.put(TaskSpec("second"))  # and left work behind in the shared queue

    resumed, metadata = CheckpointManager.resume_from_checkpoint(path)
    assert metadata.backend == {"queue": "redis", "channel": "redis"}
    assert type(resumed.queue).__name__ == "RedisTaskQueue"
    assert type(resumed.channel).__name__ == "RedisChannel"
    assert [s.task_id for s in resumed.queue.pending()] == ["second"]
    assert resumed.get_channel().get("progress") == "first done"
    assert WorkflowEngine().execute(resumed) == expected == 2
    assert resumed.results == context.results
