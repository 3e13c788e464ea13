"""``python -m graflow.worker.main`` and ``graflow worker``: options, environment, exit codes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

from graflow.worker.main import build_parser
from graflow_redis import RedisTaskQueue

pytestmark = [pytest.mark.redis]


def test_options_default_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_CONCURRENT_TASKS", "7")
    monkeypatch.setenv("GRAFLOW_QUEUE", "gpu")
    monkeypatch.setenv("WORKER_TIMEOUT", "2.5")
    args = build_parser().parse_args([])
    assert (args.max_concurrent_tasks, args.queue, args.worker_timeout) == (7, "gpu", 2.5)
    assert (args.graceful_shutdown_timeout, args.max_deliveries, args.queue_backend) == (30.0, 3, "redis")
    args = build_parser().parse_args(["--max-concurrent-tasks", "2", "--queue", "cpu", "--max-deliveries", "5"])
    assert (args.max_concurrent_tasks, args.queue, args.max_deliveries) == (2, "cpu", 5)


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "graflow.worker.main", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def test_help_lists_the_options() -> None:
    out = run_cli("--help").stdout
    for option in ("--worker-id", "--redis-url", "--max-concurrent-tasks", "--graceful-shutdown-timeout",
                   "--queue", "--queue-backend", "--worker-timeout", "--max-deliveries"):  # fmt: skip
        assert option in out


def test_a_queue_backend_workers_cannot_read_is_a_clear_error() -> None:
    proc = run_cli("--queue-backend", "memory")
    assert proc.returncode == 2
    assert "cannot feed workers" in proc.stderr and "'redis'" in proc.stderr


def test_an_unknown_queue_backend_lists_the_installed_ones() -> None:
    proc = run_cli("--queue-backend", "kafka")
    assert proc.returncode == 2
    assert "no queue backend named 'kafka'" in proc.stderr and "memory, redis" in proc.stderr


@pytest.mark.slow
def test_a_worker_started_with_a_key_prefix_serves_groups_with_that_prefix(
    redis_url: str, start_worker: Callable[..., Any]
) -> None:
    from graflow import CoordinationBackend, TaskWrapper, workflow

    start_worker("prefixed", "--key-prefix", "myapp", "--queue", "pfx")
    with workflow("prefixed") as wf:
        group = (TaskWrapper("a", lambda: 1) | TaskWrapper("b", lambda: 2)).with_execution(
            backend=CoordinationBackend.REDIS, queue_name="pfx", key_prefix="myapp", group_timeout=30
        )
    _, ctx = wf.execute(ret_context=True, config={"redis_url": redis_url})
    assert ctx.results[group.task_id] == {"a": 1, "b": 2}


def test_wrong_credentials_end_the_worker_with_a_config_error(redis_url: str) -> None:
    """Redis refusing the password is not an outage to wait out: exit 2 at once, saying what to fix."""
    bad = redis_url.replace("redis://", "redis://nobody:wrong-password@", 1)
    started = time.monotonic()
    proc = run_cli("--redis-url", bad, "--queue", "refused")
    assert proc.returncode == 2
    assert time.monotonic() - started < 20
    assert "worker_access_denied" in proc.stderr and "check the password or ACL user" in proc.stderr


def test_wrong_credentials_fail_the_submitting_run_at_once(redis_url: str) -> None:
    from graflow import CoordinationBackend, TaskWrapper, workflow
    from graflow.exceptions import BackendAccessError

    bad = redis_url.replace("redis://", "redis://nobody:wrong-password@", 1)
    with workflow("refused") as wf:
        (TaskWrapper("a", lambda: 1) | TaskWrapper("b", lambda: 2)).with_execution(backend=CoordinationBackend.REDIS)
    started = time.monotonic()
    with pytest.raises(BackendAccessError, match="Redis refused this process"):
        wf.execute(config={"redis_url": bad})
    assert time.monotonic() - started < 10  # not reconnect_timeout (300 s) of backoff


@pytest.mark.slow
def test_kubernetes_style_environment_and_clean_exit_on_sigterm(redis_server: Any, redis_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update({"REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(redis_server.port), "MAX_CONCURRENT_TASKS": "3"})
    proc = subprocess.Popen(
        [sys.executable, "-m", "graflow.worker.main", "--worker-id", "k8s-pod-1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    queue = RedisTaskQueue(redis_url=redis_url)
    deadline = time.monotonic() + 30
    while not queue.workers():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0]
        time.sleep(0.05)
    (info,) = queue.workers().values()
    assert (info["worker_id"], info["max_concurrent_tasks"], info["pid"]) == ("k8s-pod-1", 3, proc.pid)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "worker_stopped" in out
    assert queue.workers() == {}  # it said goodbye: no stale heartbeat


@pytest.mark.slow
def test_graflow_worker_command_runs_the_same_worker(redis_url: str, start_worker: Callable[..., Any]) -> None:
    graflow = os.path.join(os.path.dirname(sys.executable), "graflow")
    proc = subprocess.Popen(
        [graflow, "worker", "--redis-url", redis_url, "--worker-id", "via-graflow"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    queue = RedisTaskQueue(redis_url=redis_url)
    deadline = time.monotonic() + 30
    while not any(i["worker_id"] == "via-graflow" for i in queue.workers().values()):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0]
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
