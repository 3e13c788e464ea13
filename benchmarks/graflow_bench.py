"""Graflow's side of the performance table (issue #7), with the peer scripts' command line and output.

Prints one JSON line per workload in the format of ``peers/common.py``:
``{"peer": "graflow", "workload": ..., "unit": ..., "runs": [...], "extra": {...}}``. Timed inside the
process after a warm-up. W4/W5 start their workers through the CLI (``python -m graflow.worker.main``)
against the Redis at ``--redis-url``; W6 writes checkpoints to a temporary directory.

    python benchmarks/graflow_bench.py --workload W1 --repeat 5
"""

from __future__ import annotations

import argparse
import itertools
import logging
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import structlog

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE / "peers")]

import common  # noqa: E402  (benchmarks/peers/common.py: sizes, timing rules, output format)

from graflow import (  # noqa: E402
    CoordinationBackend,
    TaskExecutionContext,
    TaskWrapper,
    WorkflowEngine,
    task,
    workflow,
)
from graflow.core.workflow import Workflow  # noqa: E402


def noop() -> None:
    return None


def sleep_20ms() -> None:
    time.sleep(0.02)  # a literal: this function travels by value to the workers, `common` does not


def build_chain(n: int, **options: Any) -> Workflow:
    with workflow("w1_chain") as wf:
        tasks = [TaskWrapper(f"t{i}", noop, **options) for i in range(n)]
        for a, b in itertools.pairwise(tasks):
            a >> b
    return wf


def build_fan(n: int, fn: Callable[[], None], backend: CoordinationBackend, workers: int | None) -> Workflow:
    with workflow("fan") as wf:
        members = [TaskWrapper(f"m{i}", fn) for i in range(n)]
        group = members[0] | members[1]
        for m in members[2:]:
            group = group | m
        group = group.with_execution(backend=backend, max_workers=workers)
        TaskWrapper("source", noop) >> group.set_group_name("fan") >> TaskWrapper("sink", noop)
    return wf


@task(inject_context=True)
def looper(context: TaskExecutionContext, n: int = 0) -> int:
    if n < context.execution_context.config["iterations"]:
        context.next_iteration(n + 1)
    return n


def run_and_time(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def w1(args: argparse.Namespace) -> common.Result:
    wf = build_chain(common.W1_CHAIN)
    engine = WorkflowEngine()
    runs = common.timed_runs(partial(run_and_time, partial(wf.execute, engine=engine)), args.repeat, args.warmup)
    return common.result("graflow", "W1", "s", runs, {"tasks": common.W1_CHAIN})


def w1r(args: argparse.Namespace) -> common.Result:
    """W1 with ``retries=3`` on every task (none fails): the cost of the retry loop itself (issue 13)."""
    wf = build_chain(common.W1_CHAIN, retries=3)
    engine = WorkflowEngine()
    runs = common.timed_runs(partial(run_and_time, partial(wf.execute, engine=engine)), args.repeat, args.warmup)
    return common.result("graflow", "W1R", "s", runs, {"tasks": common.W1_CHAIN, "retries": 3})


def w1o(args: argparse.Namespace) -> common.Result:
    """W1 with graflow-observability installed and tracing on: a global TracerProvider exporting to
    memory (the standard OpenTelemetry setup), so every run and task makes a span (issue 13)."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)  # before the first engine of the process: the installed plugin turns on
    wf = build_chain(common.W1_CHAIN)
    engine = WorkflowEngine()

    def run() -> None:
        exporter.clear()
        wf.execute(engine=engine)

    runs = common.timed_runs(partial(run_and_time, run), args.repeat, args.warmup)
    spans = len(exporter.get_finished_spans())
    if spans != common.W1_CHAIN + 1:
        raise SystemExit(f"W1O: expected {common.W1_CHAIN + 1} spans per run (run + tasks), got {spans}")
    return common.result("graflow", "W1O", "s", runs, {"tasks": common.W1_CHAIN, "spans_per_run": spans})


def w2(args: argparse.Namespace) -> common.Result:
    wf = build_fan(common.W2_WIDTH, noop, CoordinationBackend.THREADING, None)
    engine = WorkflowEngine()
    runs = common.timed_runs(partial(run_and_time, partial(wf.execute, engine=engine)), args.repeat, args.warmup)
    return common.result("graflow", "W2", "s", runs, {"members": common.W2_WIDTH, "backend": "threading"})


def w3(args: argparse.Namespace) -> common.Result:
    wf = Workflow("w3_loop").add(looper)
    engine = WorkflowEngine()

    def loop(n: int) -> None:
        assert wf.execute(looper, engine=engine, max_steps=n + 10, config={"iterations": n}) == n

    runs, extra = common.measure_w3(loop, args.repeat, args.warmup)
    return common.result("graflow", "W3", "s", runs, extra)


def w5l(args: argparse.Namespace) -> common.Result:
    wf = build_fan(common.W5_TASKS, sleep_20ms, CoordinationBackend.THREADING, common.W5_SLOTS)
    engine = WorkflowEngine()
    runs = common.timed_runs(partial(run_and_time, partial(wf.execute, engine=engine)), args.repeat, args.warmup)
    return common.result("graflow", "W5L", "s", runs, {"ideal_s": 1.0, "threads": common.W5_SLOTS})


def _redis_fleet(args: argparse.Namespace, n: int, fn: Callable[[], None], slots: int, key: str | None) -> list[float]:
    from bench_redis import run_group, workers

    url = args.redis_url
    with workers(url, count=common.W4_WORKERS, slots=slots, key=key):
        if args.warmup:
            run_group(url, noop, common.W4_WARMUP_TASKS, key)
        # As the peers: a collection before each timed run (common.timed_runs).
        return common.timed_runs(partial(run_group, url, fn, n, key), args.repeat, warmup=False)


def w4(args: argparse.Namespace) -> common.Result:
    n = common.W4_TASKS
    # Workers as shipped: 4 slots each (the CLI default); the peers run their own best settings.
    unsigned = [n / t for t in _redis_fleet(args, n, noop, 4, None)]
    signed = [n / t for t in _redis_fleet(args, n, noop, 4, "bench-secret-key")]
    extra = {"tasks": n, "workers": "2 x 4 slots", "signed_runs": signed, "signing": "HMAC-SHA256"}
    return common.result("graflow", "W4", "tasks/s", unsigned, extra)


def w5(args: argparse.Namespace) -> common.Result:
    runs = _redis_fleet(args, common.W5_TASKS, sleep_20ms, 2, None)
    signed = _redis_fleet(args, common.W5_TASKS, sleep_20ms, 2, "bench-secret-key")
    extra = {"ideal_s": 1.0, "workers": "2 x 2 slots", "signed_runs": signed, "signing": "HMAC-SHA256"}
    return common.result("graflow", "W5", "s", runs, extra)


def w6(args: argparse.Namespace) -> list[common.Result]:
    from bench_checkpoint import measure

    with tempfile.TemporaryDirectory() as folder:
        checkpoint, resume = measure(Path(folder), args.repeat, args.warmup)
    return [
        common.result("graflow", "W6 checkpoint", "s", checkpoint, {"channel_bytes": 1 << 20, "fsync": True}),
        common.result("graflow", "W6 resume", "s", resume, {"channel_bytes": 1 << 20}),
    ]


WORKLOADS: dict[str, Callable[[argparse.Namespace], common.Result | list[common.Result]]] = {
    "W1": w1,
    "W1R": w1r,
    "W1O": w1o,
    "W2": w2,
    "W3": w3,
    "W4": w4,
    "W5": w5,
    "W5L": w5l,
    "W6": w6,
}


def main() -> None:
    # As the `graflow` command ships logging: INFO and up, to stderr (stdout carries the JSON lines).
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=sorted(WORKLOADS), action="append")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-warmup", dest="warmup", action="store_false")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    for name in args.workload or list(WORKLOADS):
        produced = WORKLOADS[name](args)
        for row in produced if isinstance(produced, list) else [produced]:
            common.emit(row)


if __name__ == "__main__":
    main()
