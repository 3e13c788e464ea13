"""A TaskWorker from Python (spec section 1): start one in this process, feed it a fan-out, read its
metrics and heartbeat, stop it gracefully.

In production workers are separate processes: ``python -m graflow.worker.main`` (or ``graflow
worker``) under systemd, Docker or Kubernetes; deploy/ has the unit, Dockerfile and manifests.

    REDIS_URL=redis://localhost:6379/0 python examples/05_distributed/redis_worker.py
"""

import threading
import time

from _fleet import REDIS_URL

from graflow import CoordinationBackend, ParallelGroup, TaskWrapper, workflow
from graflow.worker import TaskWorker
from graflow_redis import RedisTaskQueue


def make_job(n: int) -> TaskWrapper:
    def job() -> dict:
        time.sleep(0.05)  # some work
        return {"n": n, "square": n * n}

    return TaskWrapper(f"job_{n}", job)


def main() -> None:
    worker = TaskWorker(
        RedisTaskQueue(redis_url=REDIS_URL),
        worker_id="worker-1",
        max_concurrent_tasks=4,
        graceful_shutdown_timeout=30.0,
    )
    thread = threading.Thread(target=worker.start)  # start() blocks until stop()
    thread.start()

    with workflow("fan_out") as wf:
        jobs = ParallelGroup([make_job(n) for n in range(8)], name="jobs")
        jobs.with_execution(backend=CoordinationBackend.REDIS)
    started = time.perf_counter()
    _, ctx = wf.execute(ret_context=True, config={"redis_url": REDIS_URL})
    elapsed = time.perf_counter() - started

    # Who is alive and doing what, as any process can read it from Redis.
    for consumer, info in RedisTaskQueue(redis_url=REDIS_URL).workers().items():
        print("heartbeat:", consumer, info["state"], "running:", info["running"])

    worker.stop()  # like SIGTERM: finish running tasks, then return
    thread.join()

    squares = {r["n"]: r["square"] for r in ctx.results["jobs"].values()}
    print(f"8 jobs of 50 ms on 4 slots in {elapsed:.2f}s:", squares)
    print(
        "metrics:",
        f"processed={worker.tasks_processed} succeeded={worker.tasks_succeeded}",
        f"failed={worker.tasks_failed} total_execution_time={worker.total_execution_time:.2f}s",
    )
    assert squares == {n: n * n for n in range(8)}
    assert (worker.tasks_processed, worker.tasks_succeeded, worker.tasks_failed) == (8, 8, 0)
    assert worker.total_execution_time >= 8 * 0.05


if __name__ == "__main__":
    main()
