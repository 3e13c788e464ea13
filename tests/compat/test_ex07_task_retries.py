"""Compatibility with upstream Graflow 0.2's ``examples/07_dynamic_tasks/task_retries.py`` (GraflowAI/graflow).

Follows the example's five scenarios (``@task(max_retries=N)`` with ``ctx.retry_count``, retries
spent, a retried middle task of a pipeline, ``ExecutionContext.create(..., default_max_retries=N)``,
``@task(retry_policy=RetryPolicy(...))``) and the behaviour upstream's black-box retry tests check
(``tests/core/test_retry_integration.py``, the ``RetryPolicy`` part of
``tests/core/test_retry_controller.py``). Upstream's ``RetryController`` is internal and not ported.
Then the places where Graflow runs an attempt elsewhere: ``ctx.retry_count`` must be right in
threads, process pools, timed attempts in a child process and on Redis workers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from graflow import hookimpl
from graflow.coordination.coordinator import CoordinationBackend
from graflow.core.context import ExecutionContext, TaskExecutionContext
from graflow.core.decorators import task
from graflow.core.engine import WorkflowEngine
from graflow.core.graph import TaskGraph
from graflow.core.retry import RetryPolicy
from graflow.core.task import TaskWrapper
from graflow.core.workflow import workflow
from graflow.exceptions import GraflowRuntimeError


class Retrying:
    """The planned delay of each retry, as the ``graflow_task_retrying`` hook reports it."""

    def __init__(self) -> None:
        self.delays: list[tuple[str, int, float]] = []

    @hookimpl
    def graflow_task_retrying(self, task_id: str, attempt: int, delay_s: float) -> None:
        self.delays.append((task_id, attempt, delay_s))


def _run(graph: TaskGraph, start_node: str, *, engine: WorkflowEngine | None = None, **create: Any) -> ExecutionContext:
    context = ExecutionContext.create(graph, start_node=start_node, **create)
    (engine or WorkflowEngine()).execute(context)
    return context


# --- the example, scenario by scenario ---------------------------------------------------------------


def test_retry_succeeds_after_transient_failures_with_retry_count_visible() -> None:
    graph = TaskGraph()
    seen: list[tuple[int, int]] = []

    @task(inject_context=True, max_retries=3)
    def flaky_api(ctx: TaskExecutionContext) -> str:
        seen.append((ctx.retry_count, ctx.max_retries))
        if len(seen) < 3:
            raise ConnectionError(f"Connection refused (attempt {len(seen)})")
        return "ok"

    graph.add_node(flaky_api, "flaky_api")
    retrying = Retrying()
    context = _run(graph, "flaky_api", engine=WorkflowEngine(plugins=[retrying]))
    assert context.get_result("flaky_api") == "ok"
    assert seen == [(0, 3), (1, 3), (2, 3)]
    # max_retries alone retries at once, as upstream does (retry_delay=0; retries=N waits 1 s).
    assert retrying.delays == [("flaky_api", 1, 0.0), ("flaky_api", 2, 0.0)]


def test_retries_spent_fail_the_run_with_graflow_runtime_error() -> None:
    graph = TaskGraph()
    attempts = 0

    @task(max_retries=2)
    def always_fails() -> None:
        nonlocal attempts
        attempts += 1
        raise ValueError(f"fail #{attempts}")

    graph.add_node(always_fails, "always_fails")
    with pytest.raises(GraflowRuntimeError) as caught:
        _run(graph, "always_fails")
    assert attempts == 3  # 1 initial + 2 retries
    cause = caught.value.__cause__
    assert isinstance(cause, ValueError) and str(cause) == "fail #3"
    assert any("earlier ones" in note for note in getattr(cause, "__notes__", []))


def test_a_retried_middle_task_leaves_the_rest_of_the_pipeline_alone() -> None:
    graph = TaskGraph()
    log: list[str] = []
    middle_attempts = 0

    @task
    def step_1() -> str:
        log.append("step_1")
        return "data"

    @task(max_retries=2)
    def step_2() -> str:
        nonlocal middle_attempts
        middle_attempts += 1
        log.append(f"step_2:{middle_attempts}")
        if middle_attempts < 2:
            raise RuntimeError("transient")
        return "processed"

    @task
    def step_3() -> str:
        log.append("step_3")
        return "done"

    for node in (step_1, step_2, step_3):
        graph.add_node(node, node.task_id)
    graph.add_edge("step_1", "step_2")
    graph.add_edge("step_2", "step_3")
    context = _run(graph, "step_1")
    assert log == ["step_1", "step_2:1", "step_2:2", "step_3"]
    assert context.get_result("step_2") == "processed" and context.get_result("step_3") == "done"
    assert context.steps == 3  # a retry is not a step


def test_default_max_retries_retries_every_task_without_its_own() -> None:
    graph = TaskGraph()
    attempts = 0

    @task
    def unstable() -> str:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise RuntimeError(f"fail #{attempts}")
        return "recovered"

    graph.add_node(unstable, "unstable")
    context = _run(graph, "unstable", default_max_retries=3)
    assert (attempts, context.get_result("unstable")) == (3, "recovered")


def test_retry_policy_backs_off_exponentially() -> None:
    graph = TaskGraph()
    attempts = 0

    @task(retry_policy=RetryPolicy(max_retries=3, initial_interval=0.01, backoff_factor=2.0))
    def flaky_service() -> str:
        nonlocal attempts
        attempts += 1
        if attempts < 4:
            raise ConnectionError(f"timeout (attempt {attempts})")
        return "success"

    graph.add_node(flaky_service, "flaky_service")
    retrying = Retrying()
    context = _run(graph, "flaky_service", engine=WorkflowEngine(plugins=[retrying]))
    assert (attempts, context.get_result("flaky_service")) == (4, "success")
    # upstream's RetryPolicy has no jitter by default: the planned delays are exact
    assert retrying.delays == [("flaky_service", 1, 0.01), ("flaky_service", 2, 0.02), ("flaky_service", 3, 0.04)]


# --- upstream's black-box retry tests (behaviour) -----------------------------------------------------


def test_without_retries_a_failing_task_fails_at_once() -> None:
    graph = TaskGraph()
    calls = 0

    @task
    def failing() -> None:
        nonlocal calls
        calls += 1
        raise ValueError("boom")

    graph.add_node(failing, "failing")
    with pytest.raises(GraflowRuntimeError):
        _run(graph, "failing", default_max_retries=0)
    assert calls == 1


def test_decorator_exposes_max_retries_none_when_not_given() -> None:
    @task(max_retries=3)
    def with_retries() -> None: ...

    @task
    def without() -> None: ...

    assert with_retries.max_retries == 3
    assert without.max_retries is None


def test_per_task_max_retries_beats_the_run_default_both_ways() -> None:
    graph = TaskGraph()
    calls = {"more": 0, "none": 0}

    @task(max_retries=2)
    def more() -> str:
        calls["more"] += 1
        if calls["more"] < 3:
            raise ValueError("fail")
        return "recovered"

    @task(max_retries=0)
    def none() -> None:
        calls["none"] += 1
        raise ValueError("no retries for me")

    graph.add_node(more, "more")
    graph.add_node(none, "none")
    graph.add_edge("more", "none")
    with pytest.raises(GraflowRuntimeError) as caught:
        _run(graph, "more", default_max_retries=5)
    assert calls == {"more": 3, "none": 1}  # max_retries=2 over a default of 5; explicit 0 means none
    assert caught.value.task_id == "none"  # type: ignore[attr-defined]


def test_max_retries_visible_in_context_for_task_and_default() -> None:
    graph = TaskGraph()

    @task(inject_context=True, max_retries=5)
    def own(ctx: TaskExecutionContext) -> None:
        ctx.get_channel().set("own", (ctx.retry_count, ctx.max_retries))

    @task(inject_context=True)
    def defaulted(ctx: TaskExecutionContext) -> None:
        ctx.get_channel().set("defaulted", (ctx.retry_count, ctx.max_retries))

    @task(inject_context=True)
    def plain(ctx: TaskExecutionContext) -> None:
        ctx.get_channel().set("plain", (ctx.retry_count, ctx.max_retries))

    graph.add_node(own, "own")
    graph.add_node(defaulted, "defaulted")
    graph.add_edge("own", "defaulted")
    context = _run(graph, "own", default_max_retries=2)
    assert context.channel.get("own") == (0, 5)
    assert context.channel.get("defaulted") == (0, 2)
    graph2 = TaskGraph()
    graph2.add_node(plain, "plain")
    assert _run(graph2, "plain").channel.get("plain") == (0, 0)


@pytest.mark.xfail(strict=True, raises=ImportError, reason="by design: the last attempt's error is kept")
def test_upstream_raises_retry_limit_exceeded_error_when_retries_are_spent() -> None:
    """Upstream replaces the task's error by ``RetryLimitExceededError(task_id, max_retries,
    last_error)``; Graflow raises the last attempt's own error (as ``TaskExecutionError``, a
    ``GraflowRuntimeError``, with the earlier attempts noted): catch ``GraflowRuntimeError``."""
    from graflow.exceptions import RetryLimitExceededError  # type: ignore[attr-defined]

    assert RetryLimitExceededError


# --- RetryPolicy (upstream's tests/core/test_retry_controller.py, the policy part) -------------------


def test_retry_policy_defaults_and_custom_values() -> None:
    policy = RetryPolicy()
    assert (policy.max_retries, policy.initial_interval, policy.backoff_factor) == (0, 1.0, 2.0)
    assert (policy.max_interval, policy.jitter) == (60.0, False)
    custom = RetryPolicy(max_retries=5, initial_interval=0.5, backoff_factor=3.0, max_interval=30.0, jitter=True)
    assert (custom.max_retries, custom.initial_interval, custom.backoff_factor) == (5, 0.5, 3.0)
    assert (custom.max_interval, custom.jitter) == (30.0, True)


def test_retry_policy_delays_grow_by_backoff_up_to_max_interval() -> None:
    policy = RetryPolicy(max_retries=5, initial_interval=1.0, backoff_factor=2.0)
    assert [policy.get_delay(n) for n in range(4)] == [1.0, 2.0, 4.0, 8.0]
    assert [RetryPolicy(initial_interval=0.5, backoff_factor=3.0).get_delay(n) for n in range(3)] == [0.5, 1.5, 4.5]
    assert RetryPolicy(initial_interval=1.0, backoff_factor=10.0, max_interval=50.0).get_delay(3) == 50.0
    assert {RetryPolicy(initial_interval=2.0, backoff_factor=1.0).get_delay(n) for n in range(5)} == {2.0}


def test_retry_policy_jitter_stays_near_the_planned_delay() -> None:
    policy = RetryPolicy(max_retries=3, initial_interval=10.0, backoff_factor=1.0, jitter=True)
    assert policy.get_delay(0, rand=lambda: 0.0) == 5.0  # never sooner than half (upstream: [5, 15])
    assert policy.get_delay(0, rand=lambda: 1.0) == 10.0  # Graflow's equal jitter: never later than planned


def test_retry_policy_is_a_frozen_value() -> None:
    policy = RetryPolicy(max_retries=2)
    with pytest.raises(AttributeError):
        policy.max_retries = 3  # type: ignore[misc]
    assert policy == RetryPolicy(max_retries=2) and hash(policy) == hash(RetryPolicy(max_retries=2))


# --- Graflow: one retry mechanism under both spellings -----------------------------------------------


def test_the_aliases_map_onto_the_task_retry_options() -> None:
    alias = TaskWrapper("a", lambda: None, max_retries=2)
    assert alias.attempts is not None
    assert (alias.attempts.retries, alias.attempts.retry_delay) == (2, 0.0)  # upstream: retried at once
    ours = TaskWrapper("b", lambda: None, retries=2)
    assert ours.attempts is not None and ours.attempts.retry_delay == 1.0  # Graflow's own default
    spaced = TaskWrapper("c", lambda: None, max_retries=2, retry_delay=0.5)
    assert spaced.attempts is not None and spaced.attempts.retry_delay == 0.5
    policy = TaskWrapper("d", lambda: None, retry_policy=RetryPolicy(max_retries=3, initial_interval=0.1))
    a = policy.attempts
    assert a is not None
    assert (a.retries, a.retry_delay, a.backoff, a.max_delay, a.jitter) == (3, 0.1, 2.0, 60.0, False)
    assert policy.max_retries == 3


def test_a_bound_copy_keeps_alias_declared_retries_and_an_explicit_zero() -> None:
    base = TaskWrapper("fetch", lambda region: region, max_retries=2)
    copy = base.bind("fetch_eu", region="eu")
    assert copy.attempts == base.attempts and copy.max_retries == 2
    zero = TaskWrapper("once", lambda: None, max_retries=0).bind("once_more")
    assert zero.max_retries == 0  # still opted out of a run's default


def test_wf_execute_config_max_retries_is_the_same_default() -> None:
    calls = 0
    with workflow("config_default") as wf:

        @task
        def unstable() -> int:
            nonlocal calls
            calls += 1
            if calls < 2:
                raise OSError("flaky")
            return calls

    assert wf.execute(config={"max_retries": 1}) == 2


def test_a_run_default_beats_the_engine_config_default() -> None:
    graph = TaskGraph()
    calls = 0

    @task
    def unstable() -> int:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise OSError("flaky")
        return calls

    graph.add_node(unstable, "unstable")
    with pytest.raises(GraflowRuntimeError):
        _run(graph, "unstable", engine=WorkflowEngine(config={"max_retries": 5}), default_max_retries=1)
    assert calls == 2
    calls = 0
    assert _run(graph, "unstable", engine=WorkflowEngine(config={"max_retries": 5})).get_result("unstable") == 3


def test_a_timeout_only_task_gets_the_default_retries_and_keeps_its_timeout() -> None:
    graph = TaskGraph()
    seen: list[tuple[int, int]] = []

    @task(inject_context=True, timeout=30)
    def timed(ctx: TaskExecutionContext) -> str:
        seen.append((ctx.retry_count, ctx.max_retries))  # the attempt runs in a thread here
        if ctx.retry_count < 2:
            raise OSError("flaky")
        return "ok"

    graph.add_node(timed, "timed")
    assert _run(graph, "timed", default_max_retries=2).get_result("timed") == "ok"
    assert seen == [(0, 2), (1, 2), (2, 2)]


def test_retry_count_in_a_threading_group_member() -> None:
    with workflow("threads") as wf:

        @task(inject_context=True, max_retries=2)
        def member(ctx: TaskExecutionContext) -> tuple[int, int]:
            if ctx.retry_count < 2:
                raise OSError("flaky")
            return ctx.retry_count, ctx.max_retries

        @task(inject_context=True)
        def other(ctx: TaskExecutionContext) -> tuple[int, int]:
            if ctx.retry_count < 1:
                raise OSError("flaky")
            return ctx.retry_count, ctx.max_retries

        (member | other).with_execution(CoordinationBackend.THREADING).set_group_name("g")
    _, context = wf.execute(ret_context=True, config={"max_retries": 1})
    assert context.results["g"] == {"member": (2, 2), "other": (1, 1)}


@pytest.mark.slow
def test_retry_count_in_a_process_pool_member_with_and_without_a_timeout() -> None:
    """Pool members run far from the run; a timed attempt runs in a child process of the pool process."""

    def counted(ctx: TaskExecutionContext) -> tuple[int, int, int]:
        import os as os_

        if ctx.retry_count < ctx.max_retries:
            raise OSError(f"attempt {ctx.retry_count + 1} fails")
        return ctx.retry_count, ctx.max_retries, os_.getpid()

    with workflow("pool") as wf:
        (
            TaskWrapper("own", counted, inject_context=True, max_retries=2)
            | TaskWrapper("defaulted", counted, inject_context=True)
            | TaskWrapper("timed", counted, inject_context=True, max_retries=2, timeout=60)
        ).with_execution(CoordinationBackend.MULTIPROCESSING, max_workers=2).set_group_name("g")
    _, context = wf.execute(ret_context=True, config={"max_retries": 1})
    got = {name: value[:2] for name, value in context.results["g"].items()}
    assert got == {"own": (2, 2), "defaulted": (1, 1), "timed": (2, 2)}


@pytest.mark.redis
@pytest.mark.slow
def test_retry_count_on_a_redis_worker(redis_url: str, start_worker: Callable[..., Any]) -> None:
    start_worker("retry-counter")

    def counted(ctx: TaskExecutionContext) -> tuple[int, int]:
        if ctx.retry_count < ctx.max_retries:
            raise OSError(f"attempt {ctx.retry_count + 1} fails")
        return ctx.retry_count, ctx.max_retries

    with workflow("fleet") as wf:
        (
            TaskWrapper("own", counted, inject_context=True, max_retries=2)
            | TaskWrapper("defaulted", counted, inject_context=True)
            | TaskWrapper(
                "timed",
                counted,
                inject_context=True,
                retry_policy=RetryPolicy(max_retries=1, initial_interval=0),
                timeout=60,
            )
        ).with_execution(CoordinationBackend.REDIS, group_timeout=120).set_group_name("g")
    # A Redis channel: the worker's timed attempt runs in a child that connects to it (not a snapshot).
    _, context = wf.execute(
        ret_context=True, channel_backend="redis", config={"redis_url": redis_url, "max_retries": 1}
    )
    assert context.results["g"] == {"own": (2, 2), "defaulted": (1, 1), "timed": (1, 1)}
