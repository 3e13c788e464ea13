"""Dask side of the peer benchmark (run with benchmarks/.venvs/dask/bin/python).

In-process workloads use ``dask.delayed`` and the default local scheduler
(threads), i.e. what a plain ``.compute()`` does; distributed ones use
``distributed.Client(LocalCluster(...))`` with worker *processes*, the local
stand-in for a cluster that plays the part Redis + workers play elsewhere.

- W1: 1,000 ``delayed`` calls, each taking the previous one's result. The
  clock covers ``.compute()`` of the built graph (built once, computed after
  a warm-up compute); building is timed into ``extra["build_runs"]``. The
  synchronous scheduler's time for the same graph is in ``extra`` too (a
  chain gains nothing from threads).
- W2: ``src`` -> 1,000 delayed no-ops on ``src`` -> ``sink`` taking the list,
  computed on the threaded scheduler (default pool: one thread per core);
  timed like W1.
- W3: Dask graphs are static, so "a task re-running itself" can only be a
  chain of n tasks. Chained ``delayed`` objects merge their graphs at every
  link, which is quadratic (about 7 s just to build 10,000), so W3 writes the
  chain as a plain task-graph dict, Dask's own low-level graph spec, which
  builds in linear time; it is run by the threaded scheduler like ``.compute()``.
- W4: 2 worker processes x 1 thread; ``client.map`` 10,000 no-ops and
  ``client.gather`` the results.
- W5: 2 worker processes x 2 threads = 4 slots; ``client.map`` 200 sleeps.
- W5L (extra, not required by the issue): 200 delayed sleeps on the threaded
  scheduler with ``num_workers=4``.
Cluster start-up is outside the clock (as worker start-up is for Celery) and
reported in ``extra``. W4's warm-up is 1,000 tasks (see common.W4_WARMUP_TASKS).
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import dask
import dask.local
import dask.threaded
from common import (
    W1_CHAIN,
    W2_WIDTH,
    W4_TASKS,
    W4_WARMUP_TASKS,
    W4_WORKERS,
    W5_SLOTS,
    W5_TASK_SECONDS,
    W5_TASKS,
    Result,
    measure_w3,
    result,
    run_main,
    stopwatch,
    timed_runs,
    versions,
)
from dask.delayed import Delayed, delayed
from distributed import Client, LocalCluster

PEER = "dask"


def noop(*_args: object) -> None:
    return None


def step(i: int) -> int:
    return i + 1


def identity(i: int) -> int:
    return i


def sleep_task(i: int) -> int:
    time.sleep(W5_TASK_SECONDS)
    return i


def _info() -> dict[str, Any]:
    return {"versions": versions("dask", "distributed")}


def _chain() -> Delayed:
    link: Any = None
    for _ in range(W1_CHAIN):
        link = delayed(noop)(link)
    return link


def _fan_out() -> Delayed:
    src = delayed(noop)()
    middle = [delayed(noop)(src) for _ in range(W2_WIDTH)]
    return delayed(noop)(middle)


def _computer(graph: Delayed, scheduler: str) -> Callable[[], float]:
    return lambda: stopwatch(lambda: graph.compute(scheduler=scheduler))


def w1(args: argparse.Namespace) -> Result:
    graph = _chain()
    if len(dict(graph.dask)) != W1_CHAIN:
        raise AssertionError("W1 graph does not have 1,000 tasks")
    warmup = not args.no_warmup
    runs = timed_runs(_computer(graph, "threads"), args.repeat, warmup)
    sync_runs = timed_runs(_computer(graph, "sync"), args.repeat, warmup)
    build_runs = [stopwatch(_chain) for _ in range(args.repeat)]
    return result(
        PEER,
        "W1",
        "s",
        runs,
        {
            **_info(),
            "build_runs": build_runs,
            "expressed_as": "1,000 chained dask.delayed calls; .compute() on the default threaded scheduler",
            "sync_scheduler_runs": sync_runs,
        },
    )


def w2(args: argparse.Namespace) -> Result:
    graph = _fan_out()
    if len(dict(graph.dask)) != W2_WIDTH + 2:
        raise AssertionError("W2 graph does not have 1,002 tasks")
    runs = timed_runs(_computer(graph, "threads"), args.repeat, not args.no_warmup)
    build_runs = [stopwatch(_fan_out) for _ in range(args.repeat)]
    return result(
        PEER,
        "W2",
        "s",
        runs,
        {
            **_info(),
            "build_runs": build_runs,
            "expressed_as": "delayed src -> 1,000 delayed no-ops -> delayed sink(list); .compute()",
            "threads": f"threaded scheduler's default pool: one thread per core ({os.cpu_count()})",
        },
    )


def w3(args: argparse.Namespace) -> Result:
    def loop(n: int) -> None:
        graph: dict[str, Any] = {"step-0": (step, 0)}
        for i in range(1, n):
            graph[f"step-{i}"] = (step, f"step-{i - 1}")
        final = dask.threaded.get(graph, f"step-{n - 1}")
        if final != n:
            raise AssertionError(f"chain ended at {final}, wanted {n}")

    runs, extra = measure_w3(loop, args.repeat, not args.no_warmup)
    return result(
        PEER,
        "W3",
        "s",
        runs,
        {
            **_info(),
            **extra,
            "expressed_as": "chain of n tasks as a low-level graph dict, threaded scheduler "
            "(Dask has no self-re-running task; delayed chains build in quadratic time)",
        },
    )


def _cluster(threads_per_worker: int) -> tuple[LocalCluster, Client, float]:
    start = time.perf_counter()
    cluster = LocalCluster(
        n_workers=W4_WORKERS,
        threads_per_worker=threads_per_worker,
        processes=True,
        dashboard_address=None,
        silence_logs=logging.ERROR,
    )
    client = Client(cluster)
    client.wait_for_workers(W4_WORKERS)
    return cluster, client, time.perf_counter() - start


def _map_gather(client: Client, fn: Callable[[int], int], n: int) -> float:
    start = time.perf_counter()
    futures = client.map(fn, range(n), pure=False)
    values = client.gather(futures)
    elapsed = time.perf_counter() - start
    if values != list(range(n)):
        raise AssertionError("results missing or out of order")
    del futures
    return elapsed


def w4(args: argparse.Namespace) -> Result:
    cluster, client, startup = _cluster(threads_per_worker=1)
    try:
        if not args.no_warmup:
            _map_gather(client, identity, W4_WARMUP_TASKS)
        seconds = timed_runs(lambda: _map_gather(client, identity, W4_TASKS), args.repeat, warmup=False)
    finally:
        client.close()
        cluster.close()
    return result(
        PEER,
        "W4",
        "tasks/s",
        [W4_TASKS / s for s in seconds],
        {
            **_info(),
            "seconds": seconds,
            "cluster_startup_s": startup,
            "warmup_tasks": W4_WARMUP_TASKS,
            "expressed_as": "LocalCluster(n_workers=2, threads_per_worker=1, processes=True); "
            "client.map + client.gather of 10,000 no-ops",
        },
    )


def w5(args: argparse.Namespace) -> Result:
    cluster, client, startup = _cluster(threads_per_worker=W5_SLOTS // W4_WORKERS)
    try:
        runs = timed_runs(lambda: _map_gather(client, sleep_task, W5_TASKS), args.repeat, not args.no_warmup)
    finally:
        client.close()
        cluster.close()
    return result(
        PEER,
        "W5",
        "s",
        runs,
        {
            **_info(),
            "cluster_startup_s": startup,
            "ideal_s": W5_TASKS * W5_TASK_SECONDS / W5_SLOTS,
            "expressed_as": "LocalCluster(n_workers=2, threads_per_worker=2); "
            "client.map + client.gather of 200 x 20 ms",
        },
    )


def w5l(args: argparse.Namespace) -> Result:
    tasks = [delayed(sleep_task)(i) for i in range(W5_TASKS)]

    def once() -> float:
        return stopwatch(lambda: dask.compute(*tasks, scheduler="threads", num_workers=W5_SLOTS))

    runs = timed_runs(once, args.repeat, not args.no_warmup)
    return result(
        PEER,
        "W5L",
        "s",
        runs,
        {
            **_info(),
            "ideal_s": W5_TASKS * W5_TASK_SECONDS / W5_SLOTS,
            "expressed_as": "200 delayed sleeps, threaded scheduler with num_workers=4",
        },
    )


if __name__ == "__main__":
    run_main(
        PEER,
        __doc__.splitlines()[0],
        {"W1": w1, "W2": w2, "W3": w3, "W4": w4, "W5": w5, "W5L": w5l},
        {},
    )
