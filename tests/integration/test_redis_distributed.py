"""Parallel groups on a fleet of real TaskWorker processes (started through their CLI) and Redis.

Task functions here travel by value (cloudpickle), as they do from a user's script: workers do not
import this module.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import cloudpickle
import pytest
import redis

from graflow import CoordinationBackend, ExecutionContext, TaskWrapper, WorkflowEngine, task, workflow
from graflow.core.context import TaskExecutionContext
from graflow.core.task import ParallelGroup
from graflow_redis import RedisTaskQueue

cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = [pytest.mark.redis, pytest.mark.slow]

REDIS = CoordinationBackend.REDIS


def rendezvous(url: str, key: str, parties: int) -> Callable[[], tuple[int, int]]:
    """A task that returns only once ``parties`` tasks are running at the same time."""

    def meet() -> tuple[int, int]:
        client = redis.Redis.from_url(url)
        client.incr(key)
        deadline = time.monotonic() + 60
        while int(client.get(key) or 0) < parties:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {client.get(key)} of {parties} tasks ever ran at once")
            time.sleep(0.01)
        return os.getpid(), parties

    return meet


def test_spec_section_7_parallel_group_on_redis_with_env_config(
    redis_url: str, start_worker: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Spec section 7: ``(a | b | c).with_execution(backend=REDIS)``, production config from the env."""
    start_worker("w1")
    monkeypatch.setenv("ENV", "production")
    redis_client = redis.Redis.from_url(redis_url)

    @task
    def task_a() -> str:
        return "A"

    @task
    def task_b() -> str:
        return "B"

    @task
    def task_c() -> str:
        return "C"

    with workflow("section7") as wf:
        parallel = (task_a | task_b | task_c).with_execution(backend=CoordinationBackend.REDIS)
    context = ExecutionContext.create(
        wf.graph,
        channel_backend="redis" if os.getenv("ENV") == "production" else "memory",
        config={"redis_client": redis_client} if os.getenv("ENV") == "production" else None,
    )
    redis_queue = RedisTaskQueue(context, redis_client=redis_client) if os.getenv("ENV") == "production" else None
    WorkflowEngine().execute(context)
    assert context.results[parallel.task_id] == {"task_a": "A", "task_b": "B", "task_c": "C"}
    assert redis_queue is not None and len(redis_queue) == 0


def test_three_workers_share_one_queue(redis_url: str, start_worker: Callable[..., Any]) -> None:
    for name in ("w1", "w2", "w3"):
        start_worker(name, "--max-concurrent-tasks", "1")
    meet = rendezvous(redis_url, "arrived", 3)  # only completes if three workers each hold one
    with workflow("three") as wf:
        group = ParallelGroup([TaskWrapper(f"m{i}", meet) for i in range(3)]).with_execution(backend=REDIS)
    _, ctx = wf.execute(ret_context=True, config={"redis_url": redis_url})
    pids = {pid for pid, _ in ctx.results[group.task_id].values()}
    assert len(pids) == 3
    assert os.getpid() not in pids


def test_channels_are_shared_across_processes(redis_url: str, start_worker: Callable[..., Any]) -> None:
    start_worker("w1", "--max-concurrent-tasks", "3")
    start_worker("w2", "--max-concurrent-tasks", "3")

    def member(i: int) -> TaskWrapper:
        def work(context: TaskExecutionContext) -> int:
            channel = context.get_channel()
            channel.increment("count")
            channel.append("pids", os.getpid())
            channel.set(f"from_{i}", (i, "tuple"))
            return int(channel.get("offset")) + i

        return TaskWrapper(f"w{i}", work, inject_context=True)

    @task(inject_context=True)
    def setup(context: TaskExecutionContext) -> None:
        context.get_channel().set("offset", 1000)

    @task(inject_context=True)
    def collect(context: TaskExecutionContext) -> dict[str, Any]:
        channel = context.get_channel()
        return {"count": channel.get("count"), "pids": set(channel.get("pids")), "t": channel.get("from_3")}

    with workflow("channels") as wf:
        group = ParallelGroup([member(i) for i in range(12)]).with_execution(backend=REDIS)
        setup >> group >> collect
    result, ctx = wf.execute(ret_context=True, channel_backend="redis", config={"redis_url": redis_url})
    assert result["count"] == 12
    assert os.getpid() not in result["pids"]
    assert result["t"] == (3, "tuple")
    assert ctx.results[group.task_id] == {f"w{i}": 1000 + i for i in range(12)}


def test_mixed_local_and_redis_groups_in_one_workflow(redis_url: str, start_worker: Callable[..., Any]) -> None:
    start_worker("w1")

    def where(tag: str) -> Callable[[], tuple[str, int]]:
        return lambda: (tag, os.getpid())

    @task
    def join(local: dict[str, Any], remote: dict[str, Any]) -> tuple[set[int], set[int]]:
        return {pid for _, pid in local.values()}, {pid for _, pid in remote.values()}

    with workflow("mixed") as wf:
        local = ParallelGroup([TaskWrapper(f"l{i}", where("local")) for i in range(3)], name="local")
        local.with_execution(backend=CoordinationBackend.THREADING)
        remote = ParallelGroup([TaskWrapper(f"r{i}", where("redis")) for i in range(3)], name="remote")
        remote.with_execution(backend=REDIS)
        local >> remote >> join
    local_pids, remote_pids = wf.execute(config={"redis_url": redis_url})
    assert local_pids == {os.getpid()}
    assert remote_pids and os.getpid() not in remote_pids


def test_dynamic_tasks_and_iterations_from_workers(redis_url: str, start_worker: Callable[..., Any]) -> None:
    start_worker("w1", "--max-concurrent-tasks", "2")

    def converge(context: TaskExecutionContext, value: float = 100.0) -> float:
        if value > 1:
            context.next_iteration(value / 2)
        return value

    def fan(context: TaskExecutionContext) -> str:
        for i in range(3):
            context.next_task(TaskWrapper(f"extra_{i}", (lambda i=i: i * 10), register=False))
        return "fanned"

    with workflow("dynamic") as wf:
        group = ParallelGroup(
            [
                TaskWrapper("converge", converge, inject_context=True),
                TaskWrapper("fan", fan, inject_context=True),
            ]
        ).with_execution(backend=REDIS)
    _, ctx = wf.execute(ret_context=True, config={"redis_url": redis_url})
    assert ctx.results[group.task_id] == {"converge": 0.78125, "fan": "fanned"}
    assert [ctx.results[f"extra_{i}"] for i in range(3)] == [0, 10, 20]


def test_two_workflows_with_the_same_names_at_once(redis_url: str, start_worker: Callable[..., Any]) -> None:
    start_worker("w1", "--max-concurrent-tasks", "4")
    start_worker("w2", "--max-concurrent-tasks", "4")
    outcomes: dict[str, Any] = {}
    errors: list[BaseException] = []

    def run(tag: int) -> None:
        try:

            def member(i: int) -> TaskWrapper:
                def work(context: TaskExecutionContext) -> int:
                    context.get_channel().increment("calls")
                    return tag * 1000 + i

                return TaskWrapper(f"item{i}", work, inject_context=True)

            with workflow("same-name") as wf:
                group = ParallelGroup([member(i) for i in range(40)], name="fanout").with_execution(backend=REDIS)
            _, ctx = wf.execute(ret_context=True, channel_backend="redis", config={"redis_url": redis_url})
            outcomes[str(tag)] = (ctx.results[group.task_id], ctx.channel.get("calls"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(tag,)) for tag in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    for tag in (1, 2):
        assert outcomes[str(tag)] == ({f"item{i}": tag * 1000 + i for i in range(40)}, 40)


def test_queue_selection_routes_groups_to_their_fleet(redis_url: str, start_worker: Callable[..., Any]) -> None:
    start_worker("general")
    start_worker("gpu-1", "--queue", "gpu")
    with workflow("routed") as wf:
        general = ParallelGroup([TaskWrapper(f"g{i}", lambda: os.getpid()) for i in range(3)], name="general")
        general.with_execution(backend=REDIS)
        gpu = ParallelGroup([TaskWrapper(f"x{i}", lambda: os.getpid()) for i in range(3)], name="gpu")
        gpu.with_execution(backend=REDIS, queue_name="gpu")
        general >> gpu
    _, ctx = wf.execute(ret_context=True, config={"redis_url": redis_url})
    workers = {info["worker_id"]: info for info in RedisTaskQueue(redis_url=redis_url).workers().values()}
    gpu_workers = {
        info["worker_id"]: info for info in RedisTaskQueue(redis_url=redis_url, queue_name="gpu").workers().values()
    }
    assert set(ctx.results["general"].values()) == {workers["general"]["pid"]}
    assert set(ctx.results["gpu"].values()) == {gpu_workers["gpu-1"]["pid"]}


def test_heartbeat_shows_who_runs_what(redis_url: str, start_worker: Callable[..., Any]) -> None:
    start_worker("busy-1", "--max-concurrent-tasks", "2")
    client = redis.Redis.from_url(redis_url)

    def hold() -> str:
        waiter = redis.Redis.from_url(redis_url)
        waiter.blpop(["release"], timeout=60)
        return "released"

    with workflow("watch") as wf:
        ParallelGroup([TaskWrapper("long_a", hold), TaskWrapper("long_b", hold)]).with_execution(backend=REDIS)
    runner = threading.Thread(target=wf.execute, kwargs={"config": {"redis_url": redis_url}})
    runner.start()
    queue = RedisTaskQueue(redis_url=redis_url)
    deadline = time.monotonic() + 30
    while True:  # the heartbeat refreshes every worker_timeout/3 seconds
        (info,) = queue.workers().values()
        if info["running"] == ["long_a", "long_b"] or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert info["running"] == ["long_a", "long_b"]
    assert (info["worker_id"], info["max_concurrent_tasks"], info["state"]) == ("busy-1", 2, "running")
    client.rpush("release", 1, 1)
    runner.join(timeout=60)
    assert not runner.is_alive()
