"""Throughput and makespan of parallel groups on a TaskWorker fleet through Redis (issue #5, #7).

W4: 10,000 no-op members, 2 workers (4 slots each), results collected: tasks/s, without and with a
payload signing key. W5: 200 members of 20 ms on 4 worker slots (2 workers x 2): makespan against the
ideal 1.00 s. Starts its own redis-server (redis_server.py) on a free port and its worker processes
through the CLI (``python -m graflow.worker.main``); prints figures, asserts nothing.

    .venv/bin/python benchmarks/bench_redis.py [--tasks 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import structlog
from redis_server import redis_server

from graflow import CoordinationBackend, TaskWrapper, workflow
from graflow.core.task import ParallelGroup
from graflow_redis import RedisTaskQueue


def noop() -> None:
    return None


def sleep_20ms() -> None:
    time.sleep(0.02)


@contextmanager
def workers(url: str, count: int, slots: int, key: str | None) -> Iterator[None]:
    env = dict(os.environ)
    env.pop("GRAFLOW_SECRET_KEY", None)
    if key:
        env["GRAFLOW_SECRET_KEY"] = key
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "graflow.worker.main",
                "--redis-url",
                url,
                "--worker-id",
                f"bench-{i}",
                "--max-concurrent-tasks",
                str(slots),
                "--log-level",
                "warning",
            ],
            env=env,
        )
        for i in range(count)
    ]
    queue = RedisTaskQueue(redis_url=url)
    try:
        deadline = time.monotonic() + 30
        while len(queue.workers()) < count:
            if time.monotonic() > deadline:
                raise RuntimeError("workers did not start")
            time.sleep(0.05)
        yield
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=30)


def run_group(url: str, fn: object, n: int, key: str | None) -> float:
    """Seconds for one workflow whose only node is a group of ``n`` members running ``fn``."""
    config = {"redis_url": url, "secret_key": key}
    with workflow("bench") as wf:
        group = ParallelGroup([TaskWrapper(f"t{i}", fn) for i in range(n)])  # type: ignore[arg-type]
        group.with_execution(backend=CoordinationBackend.REDIS)
    started = time.perf_counter()
    _, ctx = wf.execute(ret_context=True, config=config)
    elapsed = time.perf_counter() - started
    results = ctx.results[group.task_id]
    assert len(results) == n, f"expected {n} results, got {len(results)}"
    return elapsed


def main() -> int:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--redis-server", default=shutil.which("redis-server") or "redis-server")
    args = parser.parse_args()
    with redis_server(args.redis_server) as base_url:
        url = base_url + "/0"
        for label, key in (("unsigned", None), ("signed (HMAC-SHA256)", "bench-secret-key")):
            with workers(url, count=2, slots=4, key=key):
                run_group(url, noop, 200, key)  # warm-up: imports and connections on both sides
                times = [run_group(url, noop, args.tasks, key) for _ in range(args.repeat)]
            best = min(times)
            runs = ", ".join(f"{t:.2f}" for t in times)
            print(
                f"W4 {args.tasks} no-op tasks, 2 workers x 4 slots, {label}: "
                f"best {args.tasks / best:,.0f} tasks/s ({best:.2f} s; runs: {runs})"
            )
        with workers(url, count=2, slots=2, key=None):
            run_group(url, noop, 50, None)
            times = [run_group(url, sleep_20ms, 200, None) for _ in range(args.repeat)]
        best = min(times)
        print(
            f"W5 200 tasks x 20 ms, 2 workers x 2 slots: best makespan {best:.3f} s vs ideal 1.000 s "
            f"({(best - 1) * 100:+.1f}%; runs: {', '.join(f'{t:.3f}' for t in times)})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
