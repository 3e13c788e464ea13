"""Celery side of the peer benchmark (run with benchmarks/.venvs/celery/bin/python).

Celery 5 with Redis as broker (db 0) and result backend (db 1). Workers are
real ``celery worker`` subprocesses started here, after which the driver
sends ``group(...).apply_async()`` and collects with ``.get()``; the clock
runs from sending the group to having every result (worker start-up is
outside it, and reported in ``extra``).

Pool choice:
- W4 (2 workers, concurrency 1 each): ``--pool solo``. With one slot per
  worker a pool only adds a hop: prefork would hand each task to a single
  child process over a pipe. Solo runs tasks in the worker process itself,
  which is the fastest faithful "one slot" Celery offers.
- W5 (4 slots): 2 workers x ``--pool threads --concurrency 2``. The tasks
  sleep, which releases the GIL, so threads give 4 real slots; this mirrors
  Dask's 2 workers x 2 threads.
Everything else (prefetch multiplier 4, acks on receipt, JSON) is the default.
W4's warm-up is 1,000 tasks (see common.W4_WARMUP_TASKS).

W1-W3 and W5L are skipped: Celery executes tasks only on workers through a
broker; its in-process mode (``task_always_eager``) is documented as a test
aid, runs serially and has no scheduler to measure.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from common import (
    W4_TASKS,
    W4_WARMUP_TASKS,
    W4_WORKERS,
    W5_SLOTS,
    W5_TASK_SECONDS,
    W5_TASKS,
    Result,
    result,
    run_main,
    timed_runs,
    versions,
)

PEER = "celery"
HERE = Path(__file__).resolve().parent
BROKER_DB = 0
BACKEND_DB = 1


def _urls(redis_url: str) -> tuple[str, str]:
    """Broker and backend URLs on separate databases of the harness's Redis."""
    parts = urlsplit(redis_url)
    base = f"{parts.scheme}://{parts.netloc}"
    return f"{base}/{BROKER_DB}", f"{base}/{BACKEND_DB}"


def _configure(redis_url: str) -> dict[str, str]:
    """Point the app (and the workers' environment) at the harness's Redis, emptied."""
    import redis
    from celery_app import use_redis

    broker, backend = _urls(redis_url)
    for url in (broker, backend):
        redis.Redis.from_url(url).flushdb()
    use_redis(broker, backend)
    return {"broker": broker, "backend": backend}


@contextmanager
def workers(count: int, pool: str, concurrency: int, ready_timeout: float = 60.0) -> Iterator[float]:
    """Run ``count`` ``celery worker`` processes; yield how long they took to answer a ping."""
    from celery_app import app

    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="bench-celery-") as tmp:
        logdir = Path(tmp)
        start = time.perf_counter()
        try:
            for k in range(count):
                with (logdir / f"worker{k}.log").open("wb") as log:
                    procs.append(
                        subprocess.Popen(
                            [
                                sys.executable,
                                "-m",
                                "celery",
                                "-A",
                                "celery_app",
                                "worker",
                                "--hostname",
                                f"bench{k}@%h",
                                "--pool",
                                pool,
                                "--concurrency",
                                str(concurrency),
                                "--loglevel",
                                "WARNING",
                            ],
                            cwd=HERE,
                            env={**os.environ, "PYTHONPATH": str(HERE)},
                            stdout=log,
                            stderr=subprocess.STDOUT,
                        )
                    )
            deadline = time.monotonic() + ready_timeout
            while len(app.control.ping(timeout=0.5)) < count:
                if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                    logs = "\n".join(f.read_text(errors="replace")[-1500:] for f in logdir.glob("*.log"))
                    raise RuntimeError(f"celery workers did not come up:\n{logs}")
            yield time.perf_counter() - start
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)  # warm shutdown
            for proc in procs:
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _group_roundtrip(task: Any, n: int) -> float:
    """Send n tasks as one group and wait for every result; seconds elapsed."""
    from celery import group

    start = time.perf_counter()
    pending = group(task.s(i) for i in range(n)).apply_async()
    values = pending.get(timeout=600)
    elapsed = time.perf_counter() - start
    if values != list(range(n)):
        raise AssertionError("results missing or out of order")
    pending.forget()  # keep the backend small across runs; outside the clock
    return elapsed


def w4(args: argparse.Namespace) -> Result:
    from celery_app import noop

    urls = _configure(args.redis_url)
    with workers(W4_WORKERS, pool="solo", concurrency=1) as startup:
        if not args.no_warmup:
            _group_roundtrip(noop, W4_WARMUP_TASKS)
        seconds = timed_runs(lambda: _group_roundtrip(noop, W4_TASKS), args.repeat, warmup=False)
    return result(
        PEER,
        "W4",
        "tasks/s",
        [W4_TASKS / s for s in seconds],
        {
            "versions": versions("celery", "kombu", "redis"),
            "seconds": seconds,
            "workers_startup_s": startup,
            "warmup_tasks": W4_WARMUP_TASKS,
            "redis": urls,
            "expressed_as": "2 x `celery worker --pool solo --concurrency 1`; "
            "group(noop.s(i) for 10,000).apply_async().get()",
        },
    )


def w5(args: argparse.Namespace) -> Result:
    from celery_app import SLEEP_SECONDS, sleep

    if SLEEP_SECONDS != W5_TASK_SECONDS:
        raise AssertionError("celery_app.SLEEP_SECONDS and common.W5_TASK_SECONDS disagree")
    urls = _configure(args.redis_url)
    per_worker = W5_SLOTS // W4_WORKERS
    with workers(W4_WORKERS, pool="threads", concurrency=per_worker) as startup:
        runs = timed_runs(lambda: _group_roundtrip(sleep, W5_TASKS), args.repeat, not args.no_warmup)
    return result(
        PEER,
        "W5",
        "s",
        runs,
        {
            "versions": versions("celery", "kombu", "redis"),
            "workers_startup_s": startup,
            "ideal_s": W5_TASKS * W5_TASK_SECONDS / W5_SLOTS,
            "redis": urls,
            "expressed_as": f"2 x `celery worker --pool threads --concurrency {per_worker}`; "
            "group(sleep.s(i) for 200).apply_async().get()",
        },
    )


IN_PROCESS = (
    "Celery runs tasks only on workers through a broker; its in-process mode "
    "(task_always_eager) is a serial test aid, not an engine to measure"
)

if __name__ == "__main__":
    run_main(
        PEER,
        __doc__.splitlines()[0],
        {"W4": w4, "W5": w5},
        {"W1": IN_PROCESS, "W2": IN_PROCESS, "W3": IN_PROCESS, "W5L": IN_PROCESS},
    )
