"""Compatibility with upstream Graflow 0.2's ``examples/03_data_flow`` (GraflowAI/graflow).

Follows ``channels_basic.py`` (set/get/keys/defaults across tasks), ``results_storage.py``
(``context.get_result(task_id)``), ``channel_concurrency.py`` (``channel.atomic_add`` from parallel
members; ``channel.lock(key)``) and ``typed_channels.py`` (whole TypedDict messages under any key).
"""

from __future__ import annotations

import time
from typing import TypedDict

import pytest

from graflow.core.context import TaskExecutionContext
from graflow.core.decorators import task
from graflow.core.task import ParallelGroup
from graflow.core.workflow import workflow


def test_channels_basic_producers_and_consumer() -> None:
    seen: dict[str, object] = {}
    with workflow("channel_demo") as ctx:

        @task(inject_context=True)
        def producer_1(context: TaskExecutionContext) -> None:
            channel = context.get_channel()
            channel.set("config", {"batch_size": 100, "timeout": 30})
            channel.set("counter", 1)

        @task(inject_context=True)
        def producer_2(context: TaskExecutionContext) -> None:
            channel = context.get_channel()
            channel.set("counter", channel.get("counter") + 1)
            channel.set("status", "initialized")

        @task(inject_context=True)
        def consumer(context: TaskExecutionContext) -> None:
            channel = context.get_channel()
            seen["keys"] = sorted(channel.keys())
            seen["counter"] = channel.get("counter")
            seen["missing"] = channel.get("non_existent_key", default="default_value")
            seen["none"] = channel.get("non_existent_key")

        producer_1 >> producer_2 >> consumer
        ctx.execute("producer_1")
    assert seen == {
        "keys": ["config", "counter", "status"],
        "counter": 2,
        "missing": "default_value",
        "none": None,
    }


def test_results_storage_get_result_by_task_id() -> None:
    with workflow("results_demo") as ctx:

        @task
        def fetch_data() -> int:
            return 1000

        @task
        def validate_data() -> dict[str, int]:
            return {"valid": 950, "invalid": 50, "total": 1000}

        @task(inject_context=True)
        def transform_data(context: TaskExecutionContext) -> int:
            assert context.get_result("fetch_data") == 1000
            return int(context.get_result("validate_data")["valid"])

        @task(inject_context=True)
        def generate_summary(context: TaskExecutionContext) -> dict[str, object]:
            validation = context.get_result("validate_data")
            return {
                "fetched": context.get_result("fetch_data"),
                "processed": context.get_result("transform_data"),
                "success_rate": validation["valid"] / validation["total"] * 100,
                "optional": context.get_result("optional_task", default={"empty": True}),
            }

        fetch_data >> validate_data >> transform_data >> generate_summary
        summary = ctx.execute("fetch_data")
    assert summary == {"fetched": 1000, "processed": 950, "success_rate": 95.0, "optional": {"empty": True}}


def _counter_workflow(name: str, body: object, workers: int = 5) -> int:
    with workflow(name) as ctx:

        @task(inject_context=True)
        def init_counter(context: TaskExecutionContext) -> None:
            context.get_channel().set("counter", 0)

        members = [_member(i, body) for i in range(workers)]

        @task(inject_context=True)
        def report(context: TaskExecutionContext) -> int:
            return int(context.get_channel().get("counter"))

        init_counter >> ParallelGroup(members, name=f"{name}_group") >> report
        return int(ctx.execute("init_counter"))


def _member(i: int, body: object) -> object:
    @task(inject_context=True, id=f"worker_{i}")
    def worker(context: TaskExecutionContext) -> None:
        body(context.get_channel())  # type: ignore[operator]

    return worker


def test_channel_concurrency_atomic_add_loses_no_update() -> None:
    def add_100(channel: object) -> None:
        for _ in range(100):
            channel.atomic_add("counter", 1)  # type: ignore[attr-defined]

    assert _counter_workflow("add_demo", add_100) == 500


@pytest.mark.xfail(
    strict=True,
    reason="needs a feature: channel.lock(key) (an advisory lock per key, on every backend); "
    "Graflow's atomic read-modify-write is channel.update(key, fn)",
)
def test_channel_concurrency_lock_guards_a_compound_update() -> None:
    def guarded(channel: object) -> None:
        for _ in range(10):
            with channel.lock("counter"):  # type: ignore[attr-defined]
                value = channel.get("counter")  # type: ignore[attr-defined]
                channel.set("counter", value + 1)  # type: ignore[attr-defined]

    assert _counter_workflow("lock_demo", guarded) == 50


def test_channel_concurrency_update_is_the_one_line_replacement_for_lock() -> None:
    def guarded(channel: object) -> None:
        for _ in range(10):
            channel.update("counter", lambda v: v + 1, 0)  # type: ignore[attr-defined]

    assert _counter_workflow("update_demo", guarded) == 50


class UserProfile(TypedDict):
    user_id: str
    name: str
    email: str
    age: int


class UserMetrics(TypedDict):
    user_id: str
    login_count: int
    last_active: float
    premium: bool


def test_typed_channels_hold_whole_messages_under_any_key() -> None:
    with workflow("typed_channel_demo") as ctx:

        @task(inject_context=True)
        def collect_user_data(context: TaskExecutionContext) -> None:
            profile: UserProfile = {"user_id": "user_123", "name": "Alice", "email": "alice@example.com", "age": 30}
            context.get_typed_channel(UserProfile).set("current_user", profile)

        @task(inject_context=True)
        def calculate_metrics(context: TaskExecutionContext) -> None:
            profile = context.get_typed_channel(UserProfile).get("current_user")
            metrics: UserMetrics = {
                "user_id": profile["user_id"],
                "login_count": 42,
                "last_active": time.time(),
                "premium": True,
            }
            context.get_typed_channel(UserMetrics).set("user_metrics", metrics)

        @task(inject_context=True)
        def generate_report(context: TaskExecutionContext) -> str:
            profile = context.get_typed_channel(UserProfile).get("current_user")
            metrics = context.get_typed_channel(UserMetrics).get("user_metrics")
            return f"{profile['name']} ({profile['email']}): {metrics['login_count']} logins"

        collect_user_data >> calculate_metrics >> generate_report
        assert ctx.execute("collect_user_data") == "Alice (alice@example.com): 42 logins"
