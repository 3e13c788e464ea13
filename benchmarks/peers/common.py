"""Shared plumbing for the peer bench scripts: workload sizes, timing, output.

Every peer script is run by its own venv's interpreter, so this module uses
the standard library only. Keeping the sizes, the warm-up/repeat policy and
the JSON shape here means the three peers cannot drift apart, and Graflow's
side can produce the very same dicts.

Output contract: exactly one JSON line on stdout::

    {"peer": str, "workload": str, "unit": "s" | "tasks/s",
     "runs": [float, ...], "extra": {...}}

or ``{"peer", "workload", "skipped": reason}`` when a peer cannot express a
workload faithfully. W3 puts one entry per size in ``extra["sizes"]``
(``runs`` = seconds per iteration, plus peak memory); its top-level ``runs``
are those of the largest size.

Timing scope: W1/W2 time the execution of an already built graph (as
Graflow's side does), and report graph-building times in
``extra["build_runs"]``; the whole-process W1 figure covers everything.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import resource
import sys
import time
import tracemalloc
from collections.abc import Callable, Mapping
from functools import partial
from importlib import metadata
from typing import Any

# Workload sizes, shared by all peers (and meant to match Graflow's side).
W1_CHAIN = 1_000
W2_WIDTH = 1_000
W3_SIZES: tuple[int, ...] = (10_000, 100_000)
W4_TASKS = 10_000
W4_WORKERS = 2
# W4's warm-up only has to open connections and warm the workers; a full
# 10,000-task warm-up would add 15-25 s per peer and measure nothing.
W4_WARMUP_TASKS = 1_000
W5_TASKS = 200
W5_TASK_SECONDS = 0.020
W5_SLOTS = 4

WORKLOADS: tuple[str, ...] = ("W1", "W2", "W3", "W4", "W5", "W5L")

Result = dict[str, Any]
# One measured execution; it returns its own elapsed seconds, so it decides
# what is inside the clock (e.g. not the result checks).
Once = Callable[[], float]


def parse_args(description: str, argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--workload", required=True, choices=WORKLOADS)
    parser.add_argument("--repeat", type=int, default=5, help="timed runs after the warm-up")
    parser.add_argument("--no-warmup", action="store_true", help="skip the untimed warm-up run")
    parser.add_argument(
        "--redis-url", default="redis://127.0.0.1:6379", help="redis://host:port (db numbers are chosen here)"
    )
    return parser.parse_args(argv)


def versions(*distributions: str) -> dict[str, str]:
    """Installed versions, so a result line says exactly what was measured."""
    found = {"python": platform.python_version()}
    for name in distributions:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def timed_runs(once: Once, repeat: int, warmup: bool) -> list[float]:
    """Warm-up (untimed, full size) then ``repeat`` timed runs.

    A collection before each run keeps one run's garbage out of the next
    one's clock (Graflow's side does the same).
    """
    if warmup:
        once()
    runs = []
    for _ in range(repeat):
        gc.collect()
        runs.append(once())
    return runs


def stopwatch(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def max_rss_bytes() -> int:
    """Process high-water RSS so far (Linux reports KiB)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def traced_peak_bytes(fn: Callable[[], object]) -> int:
    """Peak Python heap allocated *during* ``fn``, via tracemalloc.

    Run separately from the timed runs because tracing slows Python code
    several times over.
    """
    tracemalloc.start()
    try:
        fn()
        return int(tracemalloc.get_traced_memory()[1])
    finally:
        tracemalloc.stop()


def measure_w3(loop: Callable[[int], None], repeat: int, warmup: bool) -> tuple[list[float], dict[str, Any]]:
    """Per-iteration cost and peak memory of ``loop(n)`` for each W3 size.

    The warm-up runs at the smallest size. Sizes run in increasing order and
    all traced runs come after all timed ones, so the process-wide max RSS
    read after a size's timed runs belongs to that size (not to tracemalloc).
    """
    if warmup:
        loop(W3_SIZES[0])
    sizes: dict[str, dict[str, Any]] = {}
    for n in W3_SIZES:
        totals = timed_runs(partial(stopwatch, partial(loop, n)), repeat, warmup=False)
        sizes[str(n)] = {"runs": [seconds / n for seconds in totals], "max_rss_bytes": max_rss_bytes()}
    for n in W3_SIZES:
        gc.collect()
        sizes[str(n)]["tracemalloc_peak_bytes"] = traced_peak_bytes(partial(loop, n))
    return sizes[str(W3_SIZES[-1])]["runs"], {"sizes": sizes}


def result(peer: str, workload: str, unit: str, runs: list[float], extra: Mapping[str, Any]) -> Result:
    return {"peer": peer, "workload": workload, "unit": unit, "runs": runs, "extra": dict(extra)}


def skipped(peer: str, workload: str, reason: str) -> Result:
    return {"peer": peer, "workload": workload, "skipped": reason}


def emit(line: Result) -> None:
    """The one line on stdout the harness reads; everything else goes to stderr."""
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


def run_main(
    peer: str,
    description: str,
    workloads: Mapping[str, Callable[[argparse.Namespace], Result]],
    not_supported: Mapping[str, str],
    argv: list[str] | None = None,
) -> None:
    """Dispatch ``--workload`` to the peer's implementation or its skip reason."""
    args = parse_args(description, argv)
    if args.workload in workloads:
        emit(workloads[args.workload](args))
    else:
        emit(skipped(peer, args.workload, not_supported.get(args.workload, "not implemented for this peer")))
