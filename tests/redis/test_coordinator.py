"""Parallel groups on CoordinationBackend.REDIS, with TaskWorkers running in threads of this process.

Worker processes started through the CLI (and killed) are in tests/integration/test_redis_*.py.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pytest
import redis
import structlog

from graflow import CoordinationBackend, ErrorHandlingPolicy, ParallelGroupError, TaskWrapper, task, workflow
from graflow.core.context import TaskExecutionContext
from graflow.core.task import ParallelGroup
from graflow.exceptions import GraflowError, PayloadRejectedError, TaskTimeoutError
from graflow.worker import TaskWorker
from graflow_redis import RedisChannel, RedisTaskQueue

pytestmark = pytest.mark.redis  # a private redis-server (see conftest.py)

REDIS = CoordinationBackend.REDIS


@attrs.frozen
class Box:
    value: int


@pytest.fixture
def run_worker(redis_url: str) -> Iterator[Callable[..., TaskWorker]]:
    started: list[tuple[TaskWorker, threading.Thread]] = []

    def start(queue_name: str = "default", **kwargs: Any) -> TaskWorker:
        queue = RedisTaskQueue(redis_url=redis_url, queue_name=queue_name, worker_timeout=2)
        worker = TaskWorker(queue, block_s=0.2, **kwargs)
        thread = threading.Thread(target=worker.start, daemon=True)
        thread.start()
        started.append((worker, thread))
        deadline = threading.Event()
        for _ in range(500):
            if worker._registered:
                break
            deadline.wait(0.01)
        return worker

    yield start
    for worker, thread in started:
        worker.stop()
        thread.join(timeout=15)
        assert not thread.is_alive()


def group_of(members: list[TaskWrapper], **options: Any) -> ParallelGroup:
    return ParallelGroup(members).with_execution(backend=REDIS, **options)


def test_fan_out_results_keep_their_python_types(redis_url: str, run_worker: Callable[..., TaskWorker]) -> None:
    worker = run_worker(max_concurrent_tasks=3)
    values: list[Any] = [(1, "a"), {2, 3}, Box(4), None, b"\x00", 2**80]
    with workflow("types") as wf:
        group = group_of([TaskWrapper(f"m{i}", (lambda v=v: v)) for i, v in enumerate(values)])
    _, ctx = wf.execute(ret_context=True, config={"redis_url": redis_url})
    results = ctx.results[group.task_id]
    for i, value in enumerate(values):
        assert results[f"m{i}"] == value
        assert type(results[f"m{i}"]) is type(value)
    assert worker.tasks_succeeded == len(values)


def test_members_share_the_redis_channel_with_the_run(redis_url: str, run_worker: Callable[..., TaskWorker]) -> None:
    run_worker(max_concurrent_tasks=4)

    def member(i: int) -> TaskWrapper:
        def work(context: TaskExecutionContext) -> int:
            channel = context.get_channel()
            channel.increment("done")
            channel.append("seen", i)
            return channel.get("base") + i

        return TaskWrapper(f"w{i}", work, inject_context=True)

    @task(inject_context=True)
    def prepare(context: TaskExecutionContext) -> None:
        context.get_channel().set("base", 100)

    @task(inject_context=True)
    def report(context: TaskExecutionContext) -> tuple[int, list[int]]:
        channel = context.get_channel()
        return channel.get("done"), sorted(channel.get("seen"))

    with workflow("shared") as wf:
        group = group_of([member(i) for i in range(8)])
        prepare >> group >> report
    client = redis.Redis.from_url(redis_url)  # a live client: the workers get its URL instead
    result, ctx = wf.execute(ret_context=True, channel_backend="redis", config={"redis_client": client})
    assert result == (8, list(range(8)))
    assert ctx.results[group.task_id] == {f"w{i}": 100 + i for i in range(8)}
    assert RedisChannel(ctx.session_id, redis_url=redis_url).get("done") == 8


def test_memory_channel_writes_come_back_from_workers(redis_url: str, run_worker: Callable[..., TaskWorker]) -> None:
    run_worker(max_concurrent_tasks=4)

    def bump(context: TaskExecutionContext) -> None:
        context.get_channel().increment("hits")

    with workflow("journal") as wf:
        group_of([TaskWrapper(f"b{i}", bump, inject_context=True) for i in range(6)])
    _, ctx = wf.execute(ret_context=True, config={"redis_url": redis_url})
    assert ctx.channel.get("hits") == 6


def test_next_task_and_next_iteration_from_members(redis_url: str, run_worker: Callable[..., TaskWorker]) -> None:
    run_worker(max_concurrent_tasks=2)
    followups: list[str] = []

    def spawner(context: TaskExecutionContext) -> str:
        context.next_task(TaskWrapper("followup", lambda: "followed", register=False))
        return "spawned"

    def counter(context: TaskExecutionContext, n: int = 0) -> int:
        if n < 3:
            context.next_iteration(n + 1)
        return n

    with workflow("dynamic") as wf:
        group = group_of(
            [
                TaskWrapper("spawner", spawner, inject_context=True),
                TaskWrapper("counter", counter, inject_context=True),
            ]
        )
    _, ctx = wf.execute(ret_context=True, config={"redis_url": redis_url})
    followups.append(ctx.results["followup"])
    assert ctx.results[group.task_id] == {"spawner": "spawned", "counter": 3}
    assert ctx.cycle_counts["counter"] == 4
    assert followups == ["followed"]


def mark_ran(url: str) -> Callable[[], None]:
    """A task that leaves a trace in Redis, to prove it never ran."""

    def run() -> None:
        redis.Redis.from_url(url).set("ran", 1)

    return run


def fail(message: str) -> Callable[[], None]:
    def boom() -> None:
        raise ValueError(message)

    return boom


def test_strict_policy_fails_the_group_with_the_remote_error(
    redis_url: str, run_worker: Callable[..., TaskWorker]
) -> None:
    run_worker()
    with workflow("strict") as wf:
        group_of([TaskWrapper("ok", lambda: 1), TaskWrapper("bad", fail("broken on the worker"))])
    with pytest.raises(ParallelGroupError) as info:
        wf.execute(config={"redis_url": redis_url})
    assert info.value.failed_tasks == [("bad", "ValueError: broken on the worker")]
    assert "Traceback in the process that ran the task" in "\n".join(info.value.errors["bad"].__notes__)


def test_best_effort_policy_keeps_going(redis_url: str, run_worker: Callable[..., TaskWorker]) -> None:
    run_worker()
    with workflow("best") as wf:
        group = group_of([TaskWrapper("ok", lambda: 1), TaskWrapper("bad", fail("x"))])
        group.with_policy(ErrorHandlingPolicy.BEST_EFFORT)
    _, ctx = wf.execute(ret_context=True, config={"redis_url": redis_url})
    assert ctx.results[group.task_id] == {"ok": 1}


def test_group_timeout_is_configurable_and_cancels_its_tasks(redis_url: str, redis_client: redis.Redis) -> None:
    with workflow("nobody") as wf:  # no worker serves this queue
        group_of([TaskWrapper(f"t{i}", lambda: 1) for i in range(3)], group_timeout=0.5)
    with pytest.raises(TaskTimeoutError, match=r"timed out after 0\.5s"):
        wf.execute(config={"redis_url": redis_url})
    assert redis_client.xlen("graflow:q:default:tasks") == 0
    assert list(redis_client.scan_iter("graflow:s:*:results")) == []


def test_queue_name_selects_the_fleet(redis_url: str, run_worker: Callable[..., TaskWorker]) -> None:
    default = run_worker()
    gpu = run_worker(queue_name="gpu")
    with workflow("routing") as wf:
        group = group_of([TaskWrapper(f"g{i}", lambda: 1) for i in range(4)], queue_name="gpu")
    _, ctx = wf.execute(ret_context=True, config={"redis_url": redis_url})
    assert len(ctx.results[group.task_id]) == 4
    assert (gpu.tasks_processed, default.tasks_processed) == (4, 0)


def test_duplicate_outcomes_count_once(
    redis_url: str, run_worker: Callable[..., TaskWorker], monkeypatch: pytest.MonkeyPatch
) -> None:
    original = RedisTaskQueue.fetch

    def fetch_reporting_twice(self: RedisTaskQueue, consumer: str, n: int, block: float, done: Any = ()) -> Any:
        if done:
            self.complete(consumer, done)  # as if a worker presumed dead had reported too
        return original(self, consumer, n, block, done)

    monkeypatch.setattr(RedisTaskQueue, "fetch", fetch_reporting_twice)
    run_worker(max_concurrent_tasks=2)

    def count(context: TaskExecutionContext) -> int:
        return context.cycle_count

    with workflow("dupes") as wf:
        group = group_of([TaskWrapper(f"d{i}", count, inject_context=True) for i in range(10)])
    _, ctx = wf.execute(ret_context=True, config={"redis_url": redis_url})
    assert ctx.results[group.task_id] == {f"d{i}": 1 for i in range(10)}
    assert ctx.steps == 11  # the group and its ten members, each once


def test_two_runs_with_the_same_names_do_not_mix(redis_url: str, run_worker: Callable[..., TaskWorker]) -> None:
    run_worker(max_concurrent_tasks=4)
    outputs: dict[str, Any] = {}

    def run(tag: str) -> None:
        def member(i: int) -> TaskWrapper:
            def work(context: TaskExecutionContext) -> str:
                context.get_channel().set("owner", tag)
                return f"{tag}-{i}"

            return TaskWrapper(f"m{i}", work, inject_context=True)

        with workflow("same") as wf:
            group = group_of([member(i) for i in range(20)]).set_group_name("fanout")
        _, ctx = wf.execute(ret_context=True, channel_backend="redis", config={"redis_url": redis_url})
        outputs[tag] = (ctx.results[group.task_id], ctx.channel.get("owner"))

    threads = [threading.Thread(target=run, args=(tag,)) for tag in ("left", "right")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for tag in ("left", "right"):
        assert outputs[tag] == ({f"m{i}": f"{tag}-{i}" for i in range(20)}, tag)


def test_every_key_written_expires_or_is_deleted(
    redis_url: str, redis_client: redis.Redis, run_worker: Callable[..., TaskWorker]
) -> None:
    run_worker()

    @task(inject_context=True)
    def first(context: TaskExecutionContext) -> None:
        context.get_channel().set("k", 1)

    with workflow("ttl") as wf:
        first >> group_of([TaskWrapper(f"t{i}", lambda: 1) for i in range(3)])
    wf.execute(queue_backend="redis", channel_backend="redis", config={"redis_url": redis_url})
    keys = list(redis_client.scan_iter("*"))
    assert keys
    assert {k: redis_client.ttl(k) for k in keys if redis_client.ttl(k) < 0} == {}


def test_signed_payloads_run_when_both_sides_have_the_key(
    redis_url: str, run_worker: Callable[..., TaskWorker]
) -> None:
    run_worker(secret_key="shared-secret")
    with workflow("signed") as wf:
        group = group_of([TaskWrapper("a", lambda: "signed ok")])
    _, ctx = wf.execute(ret_context=True, config={"redis_url": redis_url, "secret_key": "shared-secret"})
    assert ctx.results[group.task_id] == {"a": "signed ok"}


def test_worker_with_a_key_refuses_an_unsigned_payload(redis_url: str, run_worker: Callable[..., TaskWorker]) -> None:
    worker = run_worker(secret_key="worker-secret")
    with workflow("unsigned") as wf:
        group_of([TaskWrapper("a", mark_ran(redis_url))])
    with structlog.testing.capture_logs() as logs, pytest.raises(ParallelGroupError) as info:
        wf.execute(config={"redis_url": redis_url})
    # The worker's signed report cannot be verified here either: the error says which key is missing.
    assert isinstance(info.value.errors["a"], PayloadRejectedError)
    assert "GRAFLOW_SECRET_KEY" in str(info.value.errors["a"])
    assert not redis.Redis.from_url(redis_url).exists("ran")
    assert worker.tasks_failed == 1
    (rejected,) = [e for e in logs if e["event"] == "payload_rejected"]
    assert rejected["task_id"] == "a"
    assert "unsigned but a secret key is set here" in rejected["reason"]


def test_a_submitter_whose_worker_lacks_the_key_is_told_to_fix_the_worker(
    redis_url: str, run_worker: Callable[..., TaskWorker]
) -> None:
    run_worker()  # no key: it refuses the signed payload and reports that unsigned
    with workflow("keyless_worker") as wf:
        group_of([TaskWrapper("a", lambda: 1)])
    with pytest.raises(ParallelGroupError) as info:
        wf.execute(config={"redis_url": redis_url, "secret_key": "run-secret"})
    message = str(info.value.errors["a"])
    assert "outcome of task 'a' from a worker was refused" in message
    assert "give every worker the same GRAFLOW_SECRET_KEY" in message


def test_tampered_payload_is_refused_without_loading_it(
    redis_url: str, run_worker: Callable[..., TaskWorker], monkeypatch: pytest.MonkeyPatch
) -> None:
    original = RedisTaskQueue.publish

    def tamper(self: RedisTaskQueue, entries: Any) -> list[str]:
        forged = []
        for fields in entries:
            payload = bytearray(fields["p"])
            payload[-5] ^= 0xFF
            forged.append({**fields, "p": bytes(payload)})
        return original(self, forged)

    monkeypatch.setattr(RedisTaskQueue, "publish", tamper)
    run_worker(secret_key="k")
    with workflow("tampered") as wf:
        group_of([TaskWrapper("a", mark_ran(redis_url))])
    with pytest.raises(ParallelGroupError) as info:
        wf.execute(config={"redis_url": redis_url, "secret_key": "k"})
    assert isinstance(info.value.errors["a"], PayloadRejectedError)
    assert "signature does not match" in str(info.value.errors["a"])
    assert not redis.Redis.from_url(redis_url).exists("ran")


def test_handler_missing_on_the_worker_is_named(redis_url: str, run_worker: Callable[..., TaskWorker]) -> None:
    run_worker()
    with workflow("handlers") as wf:
        group_of([TaskWrapper("gpu_job", lambda: 1, handler="gpu-only")])
    with pytest.raises(ParallelGroupError) as info:
        wf.execute(config={"redis_url": redis_url})
    error = info.value.errors["gpu_job"]
    assert "no handler named 'gpu-only'" in str(error)
    assert any("install the package that provides handler 'gpu-only' on the workers" in n for n in error.__notes__)


def test_nested_group_member_is_refused_clearly(redis_url: str) -> None:
    with workflow("nested") as wf:
        inner = ParallelGroup([TaskWrapper("x", lambda: 1), TaskWrapper("y", lambda: 2)])
        ParallelGroup([inner, TaskWrapper("z", lambda: 3)]).with_execution(backend=REDIS)
    with pytest.raises(GraflowError, match="only tasks can run in another process"):
        wf.execute(config={"redis_url": redis_url})


def test_worker_metrics_and_heartbeat(redis_url: str, run_worker: Callable[..., TaskWorker]) -> None:
    worker = run_worker(worker_id="metrics-1", max_concurrent_tasks=2)
    with workflow("metrics") as wf:
        group_of([TaskWrapper("ok1", lambda: 1), TaskWrapper("ok2", lambda: 2), TaskWrapper("bad", fail("x"))])
    with pytest.raises(ParallelGroupError):
        wf.execute(config={"redis_url": redis_url})
    assert (worker.tasks_processed, worker.tasks_succeeded, worker.tasks_failed) == (3, 2, 1)
    assert worker.total_execution_time > 0
    (info,) = RedisTaskQueue(redis_url=redis_url).workers().values()
    assert info["worker_id"] == "metrics-1"
    assert info["max_concurrent_tasks"] == 2
    assert info["state"] == "running"


@pytest.mark.timeout(30)
def test_a_delivery_whose_reply_was_lost_is_run_after_worker_timeout(redis_url: str, redis_client: redis.Redis) -> None:
    """Redis hands an entry to the worker's consumer but the reply never arrives (a dropped
    connection): the worker gives it back once it is worker_timeout old, and it runs."""
    queue = RedisTaskQueue(redis_url=redis_url, queue_name="lost", worker_timeout=1)
    worker = TaskWorker(queue, block_s=0.2)
    with workflow("lost_reply") as wf:
        group = group_of([TaskWrapper("only", lambda: 7)], queue_name="lost", group_timeout=20)
    outcome: dict[str, Any] = {}
    submitter = threading.Thread(
        target=lambda: outcome.update(ctx=wf.execute(ret_context=True, config={"redis_url": redis_url})[1])
    )
    submitter.start()
    for _ in range(500):
        if redis_client.exists(queue.keys.tasks) and redis_client.xlen(queue.keys.tasks):
            break
        threading.Event().wait(0.01)
    stolen = redis_client.xreadgroup("graflow-workers", worker.consumer, {queue.keys.tasks: ">"}, count=1)
    assert stolen, "the member was never published"
    thread = threading.Thread(target=worker.start, daemon=True)
    thread.start()
    try:
        submitter.join(timeout=20)
        assert not submitter.is_alive()
        assert outcome["ctx"].results[group.task_id] == {"only": 7}
        assert worker.tasks_succeeded == 1
    finally:
        worker.stop()
        thread.join(timeout=15)
