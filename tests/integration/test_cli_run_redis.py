"""``graflow run`` on Redis: the run's queue on a real redis-server, and group members on a real
worker process (started through its CLI) that the run report names."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.redis, pytest.mark.slow]

FLOW = """
from pathlib import Path
from graflow import task, workflow, TaskWrapper, Workflow

@task(inject_context=True)
def probe(ctx, out: str):
    queue = ctx.execution_context.queue
    Path(out).write_text(f"{type(queue).__module__}.{type(queue).__name__}")
    return 1

@task
def left():
    return "L"

@task
def right():
    return "R"

@task
def joined(left, right):
    return left + right


def build(out: str, fleet: bool = False) -> Workflow:
    with workflow("on-redis") as wf:
        first = TaskWrapper("probe", probe.func, inject_context=True, kwargs={"out": out})
        if fleet:
            group = (left | right).set_group_name("fleet").with_execution("redis", group_timeout=60)
            first >> group >> joined
    return wf
"""


def run_cli(tmp_path: Path, redis_url: str, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "GRAFLOW_SECRET_KEY"}
    env["REDIS_URL"] = redis_url
    return subprocess.run(
        [sys.executable, "-m", "graflow.cli", "run", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_queue_backend_redis_keeps_the_runs_queue_on_redis(tmp_path: Path, redis_url: str) -> None:
    (tmp_path / "redisflow.py").write_text(textwrap.dedent(FLOW))
    seen = tmp_path / "queue.txt"
    proc = run_cli(
        tmp_path, redis_url, "redisflow.py:build", "-p", f"out={seen}", "--queue-backend", "redis", "--report", "r.json"
    )
    assert proc.returncode == 0, proc.stderr
    assert seen.read_text() == "graflow_redis.queue.RedisTaskQueue"
    report = json.loads((tmp_path / "r.json").read_text())
    assert (report["status"], report["queue_backend"]) == ("succeeded", "redis")


def test_an_unknown_queue_backend_lists_the_installed_ones(tmp_path: Path, redis_url: str) -> None:
    (tmp_path / "redisflow.py").write_text(textwrap.dedent(FLOW))
    proc = run_cli(tmp_path, redis_url, "redisflow.py:build", "-p", "out=x", "--queue-backend", "kafka")
    assert proc.returncode == 2
    assert "no queue backend named 'kafka'; installed: memory, redis" in proc.stderr


def test_members_run_by_a_worker_are_reported_with_its_id(
    tmp_path: Path, redis_url: str, start_worker: Callable[..., Any]
) -> None:
    (tmp_path / "redisflow.py").write_text(textwrap.dedent(FLOW))
    start_worker("cli-worker-1", env={"PYTHONPATH": str(tmp_path)})  # imports redisflow's tasks by reference
    proc = run_cli(
        tmp_path, redis_url, "redisflow.py:build", "-p", f"out={tmp_path / 'q.txt'}", "-p", "fleet=true",
        "--queue-backend", "redis", "--report", "r.json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    tasks = report["tasks"]
    statuses = {t: v["status"] for t, v in tasks.items()}
    assert statuses == dict.fromkeys(["probe", "left", "right", "joined"], "succeeded")
    assert tasks["left"]["worker"] and tasks["left"]["worker"].startswith("cli-worker-1")
    assert tasks["right"]["worker"].startswith("cli-worker-1")
    assert tasks["probe"]["worker"] is None  # ran in the submitting process
    assert tasks["left"]["started_at"] is not None and tasks["right"]["started_at"] is not None  # submitted
    fleet = report["graph"]["groups"]["fleet"]
    assert fleet == {"members": ["left", "right"], "backend": "redis", "status": "succeeded"}


@pytest.mark.parametrize("where", ["queue", "group"])
def test_an_unreachable_redis_is_bad_input_before_the_run(tmp_path: Path, redis_url: str, where: str) -> None:
    """Without the check the run's backends would wait reconnect_timeout (300 s) for a server that
    is not there; the subprocess timeout below is far shorter."""
    (tmp_path / "redisflow.py").write_text(textwrap.dedent(FLOW))
    dead = f"redis://127.0.0.1:{closed_port()}/0"
    args = ["-p", "fleet=true"] if where == "group" else ["--queue-backend", "redis"]
    proc = run_cli(
        tmp_path, redis_url, "redisflow.py:build", "-p", f"out={tmp_path / 'q.txt'}", *args,
        "--config", f"redis_url={dead}", "--report", "r.json", timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert f"Redis at {dead} does not answer" in proc.stderr and "--config redis_url=" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "q.txt").exists() and not (tmp_path / "r.json").exists()  # nothing ran
