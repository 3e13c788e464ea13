"""Starts and stops local worker processes for the examples in this folder (a stand-in for the
systemd units, containers or pods of deploy/)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from graflow_redis import RedisTaskQueue

REDIS_URL = os.environ.get("REDIS_URL", "redis://localhost:6379/0")


@contextmanager
def local_fleet(count: int = 2, *args: str, queue: str = "default") -> Iterator[list[subprocess.Popen[bytes]]]:
    """``count`` workers started as ``python -m graflow.worker.main``; SIGTERM on exit (they exit 0)."""
    command = [sys.executable, "-m", "graflow.worker.main", "--redis-url", REDIS_URL, "--queue", queue]
    procs = [
        subprocess.Popen([*command, "--worker-id", f"example-worker-{i + 1}", "--log-level", "warning", *args])
        for i in range(count)
    ]
    try:
        fleet = RedisTaskQueue(redis_url=REDIS_URL, queue_name=queue)
        deadline = time.monotonic() + 30
        while len([w for w in fleet.workers().values() if w["pid"] in {p.pid for p in procs}]) < count:
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError("workers did not start; is Redis reachable at " + REDIS_URL + "?")
            time.sleep(0.05)
        yield procs
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        codes = [proc.wait(timeout=60) for proc in procs]
        assert codes == [0] * count, f"workers exited with {codes}"
