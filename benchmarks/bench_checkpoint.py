"""Checkpoint and resume of a run holding 1 MiB of channel data (issue #7, W6; targets: checkpoint
<= 2 ms including fsync, resume <= 1 ms).

The run: a 10-task chain half done, its channel holding 256 values of 4 KiB (1 MiB). The
checkpoint is durable when the call returns (each file and the directory fsynced), written to a new
path under a temporary directory (``--dir`` to pick the filesystem). Resume reads back the file just
written (page cache warm, as after a process crash) and rebuilds the context. Each figure is the
median of ``--repeat`` calls after ``--warmup`` calls. structlog is filtered to warnings, as an
application would in production. Prints figures; no time is asserted.

    .venv/bin/python benchmarks/bench_checkpoint.py [--repeat 5] [--dir /path/on/target/disk]
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from graflow import task, workflow
from graflow.core.checkpoint import CheckpointManager
from graflow.core.context import ExecutionContext


@task
def t0() -> int:
    return 0


@task
def t1(t0: int) -> int:
    return t0 + 1


@task
def t2(t1: int) -> int:
    return t1 + 1


@task
def t3(t2: int) -> int:
    return t2 + 1


@task
def t4(t3: int) -> int:
    return t3 + 1


@task
def t5(t4: int) -> int:
    return t4 + 1


@task
def t6(t5: int) -> int:
    return t5 + 1


@task
def t7(t6: int) -> int:
    return t6 + 1


@task
def t8(t7: int) -> int:
    return t7 + 1


@task
def t9(t8: int) -> int:
    return t8 + 1


def build_context(values: int, value_size: int) -> ExecutionContext:
    """Half of a 10-task chain done (t5 pending), 1 MiB in the channel. The tasks are imported from
    this file as the module ``bench_checkpoint``, so they are stored by reference like tasks in a
    real project's modules (a script's own ``__main__`` tasks would be copied by value)."""
    import bench_checkpoint as tasks

    chain = [getattr(tasks, f"t{i}") for i in range(10)]
    with workflow("bench_checkpoint") as wf:
        for a, b in itertools.pairwise(chain):
            a >> b
    context = wf.create_context(start_node="t5")
    for i in range(5):
        context.set_result(f"t{i}", i)
        context.completed.add(f"t{i}")
    channel = context.get_channel()
    for i in range(values):
        channel.set(f"feature_{i}", os.urandom(value_size))
    return context


def timed(fn: Callable[[], Any], warmup: int, repeat: int) -> list[float]:
    for _ in range(warmup):
        fn()
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - started)
    return runs


def measure(root: Path, repeat: int, warmup: bool) -> tuple[list[float], list[float]]:
    """Seconds per durable checkpoint and per resume of the 1 MiB context, written under ``root``."""
    context = build_context(values=256, value_size=4096)
    config = {"checkpoint_dir": str(root)}
    paths: list[str] = []

    def checkpoint() -> None:
        path, _ = CheckpointManager.create_checkpoint(context, config=config)
        paths.append(path)

    checkpoint()
    path = paths[-1]
    os.sync()  # resume is timed first, without our own writes still being flushed in the background
    warmups = 3 if warmup else 0
    resume_runs = timed(lambda: CheckpointManager.resume_from_checkpoint(path), warmups, repeat)
    create_runs = timed(checkpoint, warmups, repeat)
    restored, _ = CheckpointManager.resume_from_checkpoint(path)
    assert len(restored.channel.keys()) == 256 and len(restored.queue) == 1
    return create_runs, resume_runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--dir", default=None, help="where to write checkpoints (default: a temp dir)")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    root = tempfile.mkdtemp(prefix="graflow-bench-ckpt-", dir=args.dir)
    try:
        create_runs, resume_runs = measure(Path(root), args.repeat, warmup=True)
        create_ms = statistics.median(create_runs) * 1000
        resume_ms = statistics.median(resume_runs) * 1000
        print(f"checkpoint, 1 MiB channel, durable: {create_ms:.3f} ms (median of {args.repeat}; target 2 ms)")
        print(f"resume,     1 MiB channel:          {resume_ms:.3f} ms (median of {args.repeat}; target 1 ms)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    main()
