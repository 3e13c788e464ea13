"""Environment-based configuration (spec section 7): the same workflow runs in memory for local
development and on Redis in production; only the backend names change.

Runs twice: ENV=development (threads, in-memory channel, no services) and ENV=production (a worker
fleet through Redis at REDIS_URL), and checks that both give the same answer.

    REDIS_URL=redis://localhost:6379/0 python examples/05_distributed/environment_switch.py
"""

import os

import redis
from _fleet import REDIS_URL, local_fleet

from graflow import CoordinationBackend, ExecutionContext, WorkflowEngine, task, workflow
from graflow_redis import RedisTaskQueue


@task(inject_context=True)
def task_a(context) -> int:
    context.get_channel().increment("calls")
    return 1


@task(inject_context=True)
def task_b(context) -> int:
    context.get_channel().increment("calls")
    return 2


@task(inject_context=True)
def task_c(context) -> int:
    context.get_channel().increment("calls")
    return 3


@task(inject_context=True)
def total(context, parallel: dict) -> tuple:
    return sum(parallel.values()), context.get_channel().get("calls")


def run() -> tuple:
    production = os.getenv("ENV") == "production"
    redis_client = redis.Redis.from_url(REDIS_URL) if production else None
    with workflow("switch") as wf:
        parallel = (
            (task_a | task_b | task_c)
            .set_group_name("parallel")
            .with_execution(backend=CoordinationBackend.REDIS if production else CoordinationBackend.THREADING)
        )
        parallel >> total
    context = ExecutionContext.create(
        wf.graph,
        queue_backend="redis" if production else "memory",
        channel_backend="redis" if production else "memory",
        config={"redis_client": redis_client} if production else None,
    )
    redis_queue = None
    if production:
        redis_queue = RedisTaskQueue(context, redis_client=redis_client)  # the run's ready queue, from outside
        print("production: ready tasks in Redis before the run:", [s.task_id for s in redis_queue.pending()])
    result = WorkflowEngine().execute(context)
    if redis_queue is not None:
        assert len(redis_queue) == 0
    return result


def main() -> None:
    os.environ["ENV"] = "development"
    local = run()
    os.environ["ENV"] = "production"
    with local_fleet(1):
        distributed = run()
    print("development:", local, "production:", distributed)
    assert local == distributed == (6, 3)


if __name__ == "__main__":
    main()
