"""Nothing is lost when workers die, stop, or lose Redis: real worker processes, real signals.

Tasks block on a gate (a Redis key, or a file when Redis itself restarts) so each test knows which
worker holds which task before it kills or stops anything; timeouts here are guards, not assertions.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cloudpickle
import pytest
import redis
import structlog
from graflow_test_redis import wait_until

from graflow import CoordinationBackend, TaskWrapper, workflow
from graflow.core.task import ParallelGroup
from graflow.exceptions import ParallelGroupError
from graflow_redis import RedisTaskQueue, TaskDeadLetteredError

cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = [pytest.mark.redis, pytest.mark.slow]

FAST = ("--worker-timeout", "1")  # dead workers are noticed within a second, not ten


def gated(url: str, i: int) -> Callable[[], int]:
    """Records that it started (and where), waits for the ``go`` key, records that it completed."""

    def run() -> int:
        client = redis.Redis.from_url(url)
        client.rpush("started", f"{i}:{os.getpid()}")
        deadline = time.monotonic() + 120
        while not client.exists("go"):
            if time.monotonic() > deadline:
                raise TimeoutError("the test never opened the gate")
            time.sleep(0.005)
        client.rpush("completed", f"{i}:{os.getpid()}")
        return i

    return run


def file_gated(directory: str, i: int) -> Callable[[], int]:
    """Like ``gated``, with files: for tests where Redis itself goes away."""

    def run() -> int:
        folder = Path(directory)
        (folder / f"started-{i}-{os.getpid()}").touch()
        deadline = time.monotonic() + 120
        while not (folder / "go").exists():
            if time.monotonic() > deadline:
                raise TimeoutError("the test never opened the gate")
            time.sleep(0.005)
        return i

    return run


class Run:
    """A workflow executing in a thread of the test process (the submitting side)."""

    def __init__(self, members: list[TaskWrapper], config: dict[str, Any], **options: Any) -> None:
        with workflow("resilience") as wf:
            self.group = ParallelGroup(members, name="group").with_execution(
                backend=CoordinationBackend.REDIS, **options
            )
        self.result: dict[str, Any] | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(wf, config), daemon=True)
        self.thread.start()

    def _run(self, wf: Any, config: dict[str, Any]) -> None:
        try:
            _, ctx = wf.execute(ret_context=True, config=config)
            self.result = ctx.results["group"]
        except BaseException as exc:
            self.error = exc

    def join(self, timeout: float = 180) -> dict[str, Any]:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the run did not finish"
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


def by_pid(client: redis.Redis, key: str) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for entry in client.lrange(key, 0, -1):
        i, pid = entry.decode().split(":")
        out.setdefault(int(pid), []).append(int(i))
    return out


def test_kill_9_mid_group_every_task_completes_exactly_once(redis_url: str, start_worker: Callable[..., Any]) -> None:
    client = redis.Redis.from_url(redis_url)
    victim = start_worker("victim", "--max-concurrent-tasks", "4", *FAST)
    survivor = start_worker("survivor", "--max-concurrent-tasks", "4", *FAST)
    run = Run([TaskWrapper(f"t{i}", gated(redis_url, i)) for i in range(200)], {"redis_url": redis_url})
    wait_until(lambda: len(by_pid(client, "started").get(victim.pid, [])) == 4, "the victim to hold 4 tasks")
    wait_until(lambda: len(by_pid(client, "started").get(survivor.pid, [])) == 4, "the survivor to hold 4 tasks")
    held_by_victim = by_pid(client, "started")[victim.pid]
    victim.signal(signal.SIGKILL)
    assert victim.wait() == -signal.SIGKILL
    client.set("go", 1)
    assert run.join() == {f"t{i}": i for i in range(200)}
    completed = by_pid(client, "completed")
    assert set(completed) == {survivor.pid}
    assert sorted(completed[survivor.pid]) == list(range(200))  # each task completed once
    assert set(held_by_victim) <= set(by_pid(client, "started")[survivor.pid])  # redelivered


def test_sigterm_finishes_running_tasks_and_leaves_the_rest(redis_url: str, start_worker: Callable[..., Any]) -> None:
    client = redis.Redis.from_url(redis_url)
    leaving = start_worker("leaving", "--max-concurrent-tasks", "2", "--graceful-shutdown-timeout", "60")
    staying = start_worker("staying", "--max-concurrent-tasks", "2")
    run = Run([TaskWrapper(f"t{i}", gated(redis_url, i)) for i in range(20)], {"redis_url": redis_url})
    wait_until(lambda: len(by_pid(client, "started").get(leaving.pid, [])) == 2, "the leaving worker to hold 2")
    wait_until(lambda: len(by_pid(client, "started").get(staying.pid, [])) == 2, "the staying worker to hold 2")
    leaving.signal(signal.SIGTERM)
    queue = RedisTaskQueue(redis_url=redis_url)
    wait_until(
        lambda: any(i["worker_id"] == "leaving" and i["state"] == "stopping" for i in queue.workers().values()),
        "the leaving worker to report that it is stopping",
    )
    client.set("go", 1)
    assert leaving.wait() == 0
    assert run.join() == {f"t{i}": i for i in range(20)}
    started, completed = by_pid(client, "started"), by_pid(client, "completed")
    assert len(started[leaving.pid]) == 2  # took nothing after SIGTERM
    assert sorted(completed[leaving.pid]) == sorted(started[leaving.pid])  # finished what it ran
    assert sorted(completed[leaving.pid] + completed[staying.pid]) == list(range(20))
    assert "worker_stopped" in leaving.log()


def test_sigterm_gives_back_tasks_still_running_after_the_graceful_timeout(
    redis_url: str, start_worker: Callable[..., Any]
) -> None:
    client = redis.Redis.from_url(redis_url)
    leaving = start_worker("leaving", "--max-concurrent-tasks", "2", "--graceful-shutdown-timeout", "0.5")
    run = Run([TaskWrapper(f"t{i}", gated(redis_url, i)) for i in range(4)], {"redis_url": redis_url})
    wait_until(lambda: len(by_pid(client, "started").get(leaving.pid, [])) == 2, "the worker to hold 2 tasks")
    leaving.signal(signal.SIGTERM)
    assert leaving.wait() == 0
    assert "tasks_released" in leaving.log()
    taker = start_worker("taker", "--max-concurrent-tasks", "4")
    wait_until(lambda: len(by_pid(client, "started").get(taker.pid, [])) == 4, "the released tasks to move")
    client.set("go", 1)
    assert run.join() == {f"t{i}": i for i in range(4)}
    assert sorted(by_pid(client, "completed")[taker.pid]) == [0, 1, 2, 3]


def test_redis_restart_without_persistence_mid_run(
    redis_server: Any, redis_url: str, start_worker: Callable[..., Any], tmp_path: Path
) -> None:
    workers = [start_worker(f"w{n}", "--max-concurrent-tasks", "2") for n in (1, 2)]
    with structlog.testing.capture_logs() as logs:
        run = Run(
            [TaskWrapper(f"t{i}", file_gated(str(tmp_path), i)) for i in range(12)],
            {"redis_url": redis_url, "liveness_interval": 0.2},
        )
        wait_until(lambda: len(list(tmp_path.glob("started-*"))) >= 4, "both workers to hold tasks")
        redis_server.restart()  # same port, every key lost: streams, groups, heartbeats, results
        (tmp_path / "go").touch()
        assert run.join() == {f"t{i}": i for i in range(12)}
    events = [entry["event"] for entry in logs]
    assert "redis_data_lost" in events  # the submitter noticed and published its members again
    assert "worker_presumed_dead" not in events  # live workers were not mistaken for dead ones
    for worker in workers:
        assert worker.proc.poll() is None, worker.log()


def test_dropped_connections_are_reestablished(
    redis_url: str, start_worker: Callable[..., Any], tmp_path: Path
) -> None:
    client = redis.Redis.from_url(redis_url)
    start_worker("w1", "--max-concurrent-tasks", "2")
    run = Run(
        [TaskWrapper(f"t{i}", file_gated(str(tmp_path), i)) for i in range(10)],
        {"redis_url": redis_url, "liveness_interval": 0.2},
    )
    wait_until(lambda: len(list(tmp_path.glob("started-*"))) >= 2, "the worker to hold tasks")
    client.client_kill_filter(_type="normal", skipme=True)  # every other connection drops
    (tmp_path / "go").touch()
    assert run.join() == {f"t{i}": i for i in range(10)}


def test_task_that_keeps_killing_workers_is_dead_lettered(redis_url: str, start_worker: Callable[..., Any]) -> None:
    def poison() -> None:
        os.kill(os.getpid(), signal.SIGKILL)  # like an OOM kill or a segfault in native code

    first = start_worker("first", "--max-concurrent-tasks", "1", "--max-deliveries", "2", *FAST)
    second = start_worker("second", "--max-concurrent-tasks", "1", "--max-deliveries", "2", *FAST)
    run = Run([TaskWrapper("poison", poison)], {"redis_url": redis_url, "max_deliveries": 2})
    with pytest.raises(ParallelGroupError) as info:
        run.join()
    error = info.value.errors["poison"]
    assert isinstance(error, TaskDeadLetteredError)
    assert "dead-lettered" in str(error) and "died 2 times" in str(error)
    assert (first.wait(), second.wait()) == (-signal.SIGKILL, -signal.SIGKILL)
    (dead,) = RedisTaskQueue(redis_url=redis_url).dead_letters()
    assert dead["t"] == "poison"
    start_worker("fresh")  # the fleet carries on with other work
    assert Run([TaskWrapper("fine", lambda: "ok")], {"redis_url": redis_url}).join() == {"fine": "ok"}


def test_tasks_of_a_killed_submitter_are_skipped_once_its_results_stream_expires(
    redis_url: str, start_worker: Callable[..., Any]
) -> None:
    """Nobody waits for the outcomes of a submitter that died: within result_ttl (plus the workers'
    5 s route cache) its remaining members are dropped instead of occupying the fleet."""
    client = redis.Redis.from_url(redis_url)
    start_worker("only", "--max-concurrent-tasks", "1", *FAST)
    submitter_code = f"""
import time, redis
from graflow import CoordinationBackend, TaskWrapper, workflow
from graflow.core.task import ParallelGroup

def member(i):
    def run():
        redis.Redis.from_url({redis_url!r}).rpush("started", i)
        time.sleep(0.5)
        return i
    return TaskWrapper(f"m{{i}}", run)

with workflow("doomed") as wf:
    ParallelGroup([member(i) for i in range(40)], name="g").with_execution(backend=CoordinationBackend.REDIS)
wf.execute(config={{"redis_url": {redis_url!r}, "result_ttl": 2}})
"""
    submitter = subprocess.Popen([sys.executable, "-c", submitter_code])
    try:
        wait_until(lambda: client.llen("started") >= 2, "the worker to start the submitter's members")
    finally:
        submitter.kill()
        submitter.wait(timeout=30)
    tasks = RedisTaskQueue(redis_url=redis_url).keys.tasks
    wait_until(lambda: client.xlen(tasks) == 0, "the orphaned members to be dropped", timeout=30)
    assert client.llen("started") < 30  # 40 members of 0.5 s: most were skipped, not run
