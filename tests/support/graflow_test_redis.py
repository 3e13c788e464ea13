"""Test helpers for graflow-redis: a private redis-server, and worker processes started by their CLI.

Imported by tests/redis/conftest.py and tests/integration/conftest.py (this folder is put on
``sys.path`` by them; nothing else lives here, so no name can shadow a real package). Tests never
touch a system Redis: each session starts its own redis-server on a free port of 127.0.0.1, without
persistence, and can restart it. A missing redis-server binary skips locally and fails in CI.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import redis

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
REPO = Path(__file__).resolve().parents[2]


def redis_server_binary() -> str:
    """The redis-server to run; skips the test here, fails it in CI, when there is none."""
    found = os.environ.get("GRAFLOW_REDIS_SERVER") or shutil.which("redis-server")
    if not found and Path("/usr/bin/redis-server").exists():
        found = "/usr/bin/redis-server"
    if not found:
        reason = "redis-server is not installed (apt-get install redis-server, or bash scripts/services.sh)"
        if IN_CI:
            pytest.fail(f"{reason}; CI=true: services must be present", pytrace=False)
        pytest.skip(reason)
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], Any], what: str, timeout: float = 60, interval: float = 0.02) -> Any:
    """Poll ``check`` until it returns something truthy (a guard for tests, never an assertion)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class RedisServer:
    """One redis-server process on 127.0.0.1; ``restart()`` keeps its port (and, without
    ``appendonly``, loses its data, like a crashed server without persistence)."""

    def __init__(self, binary: str, appendonly: bool = False) -> None:
        self.binary = binary
        self.appendonly = appendonly
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="graflow-test-redis-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=2)

    def start(self) -> None:
        args = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "yes" if self.appendonly else "no", "--dir", str(self.dir),
            "--logfile", str(self.dir / "redis.log"),
        ]  # fmt: skip
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def up() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}; see {self.dir / 'redis.log'}")
            try:
                return bool(self.client().ping())
            except redis.ConnectionError:
                return False

        wait_until(up, f"redis-server on port {self.port}", timeout=20)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def started_server(appendonly: bool = False) -> RedisServer:
    server = RedisServer(redis_server_binary(), appendonly=appendonly)
    server.start()
    return server


# --- fixtures (imported by the conftests) ----------------------------------------------------------


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = started_server()
    yield server
    server.cleanup()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's server, emptied for this test (restarted first if a test stopped it)."""
    if redis_server.proc is None or redis_server.proc.poll() is not None:
        redis_server.start()
    redis_server.client().flushall()
    return redis_server.url


@pytest.fixture
def redis_client(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


# --- worker processes --------------------------------------------------------------------------------


class WorkerProcess:
    """``python -m graflow.worker.main`` as a subprocess; its log goes to a file for failed tests."""

    def __init__(
        self,
        url: str,
        worker_id: str,
        args: Sequence[str],
        env: dict[str, str],
        log_dir: Path,
        new_session: bool = False,
    ) -> None:
        self.worker_id = worker_id
        self.log_path = log_dir / f"{worker_id}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in wait()
        command = [
            sys.executable,
            "-m",
            "graflow.worker.main",
            "--redis-url",
            url,
            "--worker-id",
            worker_id,
            *args,
        ]
        # new_session: a process group of its own, so a test can signal the whole group like a
        # service manager or a terminal would, without signalling pytest itself.
        self.proc = subprocess.Popen(
            command, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=new_session
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def signal(self, signum: int) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signum)

    def wait(self, timeout: float = 60) -> int:
        code = self.proc.wait(timeout=timeout)
        self._log.close()
        return code

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")


def worker_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GRAFLOW_SECRET_KEY", "REDIS_URL")}
    env.update(extra or {})
    return env


@pytest.fixture
def start_worker(redis_url: str, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """``start_worker(worker_id, *args, env=None, wait=True, new_session=False)``: a worker process on
    the test's Redis, returned once its heartbeat is visible. Every worker still running at teardown
    is killed."""
    from graflow_redis import RedisTaskQueue

    started: list[WorkerProcess] = []

    def start(
        worker_id: str, *args: str, env: dict[str, str] | None = None, wait: bool = True, new_session: bool = False
    ) -> WorkerProcess:
        worker = WorkerProcess(redis_url, worker_id, args, worker_env(env), tmp_path, new_session)
        started.append(worker)
        if wait:
            queue_name = args[args.index("--queue") + 1] if "--queue" in args else "default"
            prefix = {"key_prefix": args[args.index("--key-prefix") + 1]} if "--key-prefix" in args else {}
            queue = RedisTaskQueue(redis_url=redis_url, queue_name=queue_name, config=prefix)

            def visible() -> bool:
                if worker.proc.poll() is not None:
                    raise AssertionError(f"worker {worker_id} exited with {worker.proc.returncode}:\n{worker.log()}")
                return any(info["worker_id"] == worker_id for info in queue.workers().values())

            wait_until(visible, f"worker {worker_id} heartbeat", timeout=30)
        return worker

    yield start
    for worker in started:
        worker.signal(signal.SIGKILL)
        worker.wait(timeout=30)
