"""Retries and timeouts on real ``graflow worker`` processes (started through the CLI) and Redis.

Task functions are defined inside the tests, so they travel by value as from a user's script.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest

from graflow import CoordinationBackend, ParallelGroup, TaskWrapper, WorkflowEngine, hookimpl, workflow
from graflow.exceptions import TaskTimeoutError

pytestmark = [pytest.mark.redis, pytest.mark.slow]


class Reports:
    """What the submitting side hears about each member."""

    def __init__(self) -> None:
        self.succeeded: dict[str, int] = {}
        self.failed: dict[str, tuple[BaseException, int]] = {}

    @hookimpl
    def graflow_task_succeeded(self, task_id: str, attempts: int) -> None:
        self.succeeded[task_id] = attempts

    @hookimpl
    def graflow_task_failed(self, task_id: str, error: BaseException, attempts: int) -> None:
        self.failed[task_id] = (error, attempts)


def test_worker_kills_timed_out_attempts_retries_flaky_tasks_and_keeps_serving(
    redis_url: str, start_worker: Callable[..., Any]
) -> None:
    worker = start_worker("retrier", "--max-concurrent-tasks", "3")
    url = redis_url

    def stuck() -> None:
        import os as os_
        import time as time_

        import redis as redis_

        redis_.Redis.from_url(url).rpush("stuck-pids", os_.getpid())
        time_.sleep(10_000)

    def flaky() -> int:
        import redis as redis_

        calls = int(redis_.Redis.from_url(url).incr("flaky-calls"))
        if calls < 3:
            raise ConnectionError(f"call {calls}: the service is down")
        return calls

    def lucky() -> str:
        import time as time_

        import redis as redis_

        if redis_.Redis.from_url(url).set("lucky-first", 1, nx=True):
            time_.sleep(10_000)  # the first attempt hangs; the worker kills it at the timeout
        return "second attempt"

    reports = Reports()
    with workflow("fleet_retries") as wf:
        (
            TaskWrapper("stuck", stuck, timeout=2.0)
            | TaskWrapper("flaky", flaky, retries=3, retry_delay=0.05, backoff=1, jitter=False)
            | TaskWrapper("lucky", lucky, timeout=2.0, retries=1, retry_delay=0)
        ).with_execution(CoordinationBackend.REDIS, group_timeout=120).with_policy("best_effort").set_group_name("g")
    _, ctx = wf.execute(engine=WorkflowEngine(plugins=[reports]), ret_context=True, config={"redis_url": url})

    assert ctx.results["g"] == {"flaky": 3, "lucky": "second attempt"}
    assert reports.succeeded == {"flaky": 3, "lucky": 2}  # attempts made on the worker reach the submitter
    error, attempts = reports.failed["stuck"]
    assert isinstance(error, TaskTimeoutError) and attempts == 1
    assert "was killed" in str(error)

    import redis

    client = redis.Redis.from_url(url)
    (stuck_pid,) = [int(p) for p in client.lrange("stuck-pids", 0, -1)]
    assert stuck_pid != worker.pid
    with pytest.raises(ProcessLookupError):
        os.kill(stuck_pid, 0)  # killed, not left sleeping
    log = worker.log()
    assert "task_attempt_killed" in log and "task_retrying" in log

    # The worker goes on serving.
    assert worker.proc.poll() is None
    with workflow("after") as wf2:
        (TaskWrapper("a", lambda: 1) | TaskWrapper("b", lambda: 2)).with_execution(
            CoordinationBackend.REDIS, group_timeout=60
        ).set_group_name("g2")
    _, ctx2 = wf2.execute(ret_context=True, config={"redis_url": url})
    assert ctx2.results["g2"] == {"a": 1, "b": 2}


def test_sigterm_to_the_workers_process_group_lets_a_timed_attempt_finish(
    redis_url: str, start_worker: Callable[..., Any]
) -> None:
    """What a service manager or Ctrl-C does: the signal reaches every process of the worker's group.
    The attempt's child leads a group of its own, so the worker's graceful shutdown decides: the
    attempt finishes (no "killed ... out of memory?" failure, no retry) and the worker exits 0."""
    import signal
    import threading

    import redis

    url = redis_url
    client = redis.Redis.from_url(url)
    worker = start_worker("w-term", "--graceful-shutdown-timeout", "60", new_session=True)

    def waits_for_go() -> str:
        import redis as redis_

        r = redis_.Redis.from_url(url)
        r.rpush("started", 1)
        r.blpop(["go"], 60)  # a blocking read: returns when the test says so
        return "finished"

    reports = Reports()
    outcome: dict[str, Any] = {}
    with workflow("term") as wf:
        ParallelGroup(
            [TaskWrapper("slow", waits_for_go, timeout=120, retries=2, retry_delay=0)], name="g"
        ).with_execution(CoordinationBackend.REDIS, group_timeout=120)

    def submit() -> None:
        try:
            _, ctx = wf.execute(engine=WorkflowEngine(plugins=[reports]), ret_context=True, config={"redis_url": url})
            outcome["results"] = ctx.results["g"]
        except BaseException as exc:
            outcome["error"] = exc

    submitter = threading.Thread(target=submit, daemon=True)
    submitter.start()
    assert client.blpop(["started"], 60) is not None  # the attempt runs in its child
    os.killpg(worker.pid, signal.SIGTERM)
    client.rpush("go", 1)
    submitter.join(90)
    assert not submitter.is_alive()
    assert "error" not in outcome, outcome.get("error")
    assert outcome["results"] == {"slow": "finished"}
    assert reports.succeeded == {"slow": 1}  # one attempt: not killed by the signal, not retried
    assert worker.wait(60) == 0
    assert "task_attempt_killed" not in worker.log()
