"""Seamless local/distributed execution (spec section 7): one workflow, local stages and a fan-out on
a TaskWorker fleet through Redis, channels shared across processes (spec section 8).

Needs a Redis server: REDIS_URL (default redis://localhost:6379/0). Starts two worker processes,
runs the workflow, checks the results, stops the workers.

    REDIS_URL=redis://localhost:6379/0 python examples/05_distributed/distributed_workflow.py
"""

import os

from _fleet import REDIS_URL, local_fleet

from graflow import CoordinationBackend, ParallelGroup, TaskWrapper, task, workflow


@task(inject_context=True)
def load(context) -> list[int]:
    """Runs in this process (sequential parts never leave it)."""
    context.get_channel().set("scale", 10)
    return list(range(12))


def make_shard(index: int) -> TaskWrapper:
    """Each shard runs on whichever worker takes it; the channel is the same Redis hash everywhere."""

    def shard(context, load: list[int]) -> tuple[int, int]:
        channel = context.get_channel()
        channel.increment("shards_done")
        channel.append("workers", os.getpid())
        return index, load[index] * channel.get("scale")

    return TaskWrapper(f"shard_{index}", shard, inject_context=True)


@task(inject_context=True)
def validate(context, load: list[int]) -> int:
    return len(load)


@task(inject_context=True)
def aggregate(context) -> dict:
    channel = context.get_channel()
    results = context.get_result("shards")
    return {
        "total": sum(value for _, value in results.values()),
        "shards_done": channel.get("shards_done"),
        "worker_pids": sorted(set(channel.get("workers"))),
    }


def main() -> None:
    with workflow("distributed") as wf:
        # A parallel group on the fleet: members go to Redis, workers run them, the barrier waits (BSP).
        shards = ParallelGroup([make_shard(i) for i in range(12)], name="shards")
        shards.with_execution(backend=CoordinationBackend.REDIS)
        # A local group in the same workflow, on threads of this process.
        checks = (validate | TaskWrapper("count_again", lambda load: len(load))).with_execution(
            backend=CoordinationBackend.THREADING
        )
        load >> checks >> shards >> aggregate

    with local_fleet(2, "--max-concurrent-tasks", "3") as procs:
        summary = wf.execute(channel_backend="redis", config={"redis_url": REDIS_URL})

    print("summary:", summary)
    assert summary["total"] == sum(i * 10 for i in range(12))
    assert summary["shards_done"] == 12
    assert set(summary["worker_pids"]) <= {p.pid for p in procs}
    assert os.getpid() not in summary["worker_pids"]
    print("ok: 12 shards ran on", len(summary["worker_pids"]), "worker process(es)")


if __name__ == "__main__":
    main()
