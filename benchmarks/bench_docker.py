"""Per-task overhead of the Docker handler on a warm engine (issue #6).

Three figures, each the median of ``--repeat`` runs after ``--warmup``:

* direct: a one-task workflow with the direct handler (the baseline);
* docker: the same no-op task with ``DockerTaskHandler`` (create, start, wait, read, remove);
* bare container: docker-py alone running ``python3 -c "import cloudpickle"`` in the same image, the
  floor any container-per-task design pays on this machine.

The image comes from ``--image`` or ``GRAFLOW_DOCKER_IMAGE`` (``bash scripts/build-test-image.sh``
prints it). structlog is filtered to warnings. Prints figures, asserts nothing.

    GRAFLOW_DOCKER_IMAGE=$(bash scripts/build-test-image.sh) .venv/bin/python benchmarks/bench_docker.py
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import time
from collections.abc import Callable

import docker
import structlog

from graflow import TaskWrapper, WorkflowEngine, workflow
from graflow_docker import DockerTaskHandler


def timed(fn: Callable[[], object], warmup: int, repeat: int) -> list[float]:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return samples


def one_task_run(engine: WorkflowEngine, handler_name: str) -> Callable[[], object]:
    with workflow("bench") as wf:
        wf.add(TaskWrapper("noop", lambda: None, handler=handler_name))
    return lambda: wf.execute(engine=engine)


def bare_container(client: docker.DockerClient, image: str) -> Callable[[], object]:
    def run() -> None:
        container = client.containers.create(image, ["python3", "-c", "import cloudpickle"])
        try:
            container.start()
            container.wait()
        finally:
            container.remove(force=True)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default=os.environ.get("GRAFLOW_DOCKER_IMAGE"))
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    if not args.image:
        parser.error("pass --image or set GRAFLOW_DOCKER_IMAGE (bash scripts/build-test-image.sh prints one)")
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

    engine = WorkflowEngine()
    engine.register_handler("box", DockerTaskHandler(image=args.image))
    client = docker.from_env()
    figures = {
        "direct": timed(one_task_run(engine, "direct"), args.warmup, args.repeat),
        "docker": timed(one_task_run(engine, "box"), args.warmup, args.repeat),
        "bare container": timed(bare_container(client, args.image), args.warmup, args.repeat),
    }
    info = client.info()
    print(
        f"image {args.image}; Docker {info.get('ServerVersion')}, storage {info.get('Driver')}, "
        f"{os.cpu_count()} CPUs; median (min-max) of {args.repeat} runs after {args.warmup} warm-up"
    )
    for name, samples in figures.items():
        print(
            f"  {name:>15}: {statistics.median(samples) * 1000:9.2f} ms"
            f"  ({min(samples) * 1000:.2f}-{max(samples) * 1000:.2f})"
        )
    overhead = statistics.median(figures["docker"]) - statistics.median(figures["direct"])
    extra = statistics.median(figures["docker"]) - statistics.median(figures["bare container"])
    print(f"  Docker handler overhead per task: {overhead * 1000:.0f} ms", end="")
    print(f" ({extra * 1000:+.0f} ms over a bare container)")


if __name__ == "__main__":
    main()
