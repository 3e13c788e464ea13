"""Channels: the key-value store, namespaces, atomic updates, field channels, backends.

Typed messages (``get_typed_channel``) are in test_typed_channel.py."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, Literal, TypedDict

import attrs
import pytest

from graflow import (
    ExecutionContext,
    TaskExecutionContext,
    TaskWrapper,
    WorkflowEngine,
    hookimpl,
    task,
    workflow,
)
from graflow.channels import FieldChannel
from graflow.channels.memory import MemoryChannel
from graflow.exceptions import UnknownNameError


@pytest.fixture
def channel() -> MemoryChannel:
    return MemoryChannel("test")


class Point:
    def __init__(self, x: int) -> None:
        self.x = x


def test_set_get_and_default(channel: MemoryChannel) -> None:
    channel.set("config", {"batch_size": 100})
    assert channel.get("config") == {"batch_size": 100}
    assert channel.get("absent") is None
    assert channel.get("absent", default={}) == {}
    assert channel.get("absent", "positional default") == "positional default"


def test_values_keep_their_python_types(channel: MemoryChannel) -> None:
    values: dict[str, Any] = {
        "tuple": (1, 2),
        "set": {3, 4},
        "bytes": b"\x00\x01",
        "none": None,
        "float": 1.5,
        "nested": {"a": [1, {"b": (2,)}]},
        "object": Point(7),
    }
    for key, value in values.items():
        channel.set(key, value)
    for key, value in values.items():
        got = channel.get(key, "missing")
        assert type(got) is type(value)
    assert channel.get("object").x == 7
    assert channel.get("none", "missing") is None


def test_keys_delete_clear_and_contains(channel: MemoryChannel) -> None:
    channel.set("a", 1)
    channel.set("b", 2)
    assert sorted(channel.keys()) == ["a", "b"]
    assert "a" in channel
    assert channel.delete("a") is True
    assert channel.delete("a") is False
    assert "a" not in channel
    channel.clear()
    assert channel.keys() == []


def test_increment_append_and_update(channel: MemoryChannel) -> None:
    assert channel.increment("count") == 1
    assert channel.increment("count", 5) == 6
    assert channel.append("items", "x") == ["x"]
    assert channel.append("items", "y") == ["x", "y"]
    assert channel.update("word", lambda v: v + "!", "hi") == "hi!"
    assert channel.update("word", str.upper) == "HI!"
    assert channel.get("count") == 6 and channel.get("items") == ["x", "y"]


def test_atomic_updates_lose_no_write_under_threads(channel: MemoryChannel) -> None:
    threads_n, per_thread = 8, 500
    barrier = threading.Barrier(threads_n)

    def hammer(i: int) -> None:
        barrier.wait()
        for j in range(per_thread):
            channel.increment("counter")
            channel.append("log", (i, j))
            channel.update("total", lambda v: v + 2, 0)

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert channel.get("counter") == threads_n * per_thread
    assert len(channel.get("log")) == threads_n * per_thread
    assert channel.get("total") == 2 * threads_n * per_thread


def test_channel_is_shared_by_the_tasks_of_a_run() -> None:
    with workflow("shared") as wf:

        @task(inject_context=True)
        def producer(context: TaskExecutionContext) -> None:
            channel = context.get_channel()
            channel.set("config", {"batch_size": 100})
            channel.increment("seen")

        @task(inject_context=True)
        def consumer(context: TaskExecutionContext) -> tuple[Any, Any]:
            channel = context.get_channel()
            channel.increment("seen")
            return channel.get("config"), channel.get("metrics", default={})

        producer >> consumer
    result, ctx = wf.execute(ret_context=True)
    assert result == ({"batch_size": 100}, {})
    assert ctx.get_channel().get("seen") == 2


def test_namespaced_channels_are_isolated(channel: MemoryChannel) -> None:
    ctx_like = type("Ctx", (), {"channel": channel})()
    ns_a = TaskExecutionContext(ctx_like, "t", 1).get_channel("a")
    ns_b = TaskExecutionContext(ctx_like, "t", 1).get_channel("b")
    ns_a.set("k", "in a")
    ns_b.set("k", "in b")
    channel.set("k", "root")
    assert (ns_a.get("k"), ns_b.get("k"), channel.get("k")) == ("in a", "in b", "root")
    assert ns_a.keys() == ["k"]
    assert "k" in ns_a and "other" not in ns_a
    assert ns_a.increment("n") == 1 and ns_b.get("n") is None
    assert ns_a.append("l", 1) == [1]
    assert ns_a.update("u", lambda v: v * 2, 4) == 8
    ns_a.clear()
    assert ns_a.keys() == [] and ns_b.get("k") == "in b" and channel.get("k") == "root"
    assert ns_b.delete("k") is True and ns_b.keys() == []


def test_namespaced_channel_from_execution_context() -> None:
    with workflow("ns") as wf:

        @task(inject_context=True)
        def writer(ctx: TaskExecutionContext) -> None:
            ctx.get_channel("metrics").set("loss", 0.1)
            ctx.get_channel().set("loss", "root value")

    _, ctx = wf.execute(ret_context=True)
    assert ctx.get_channel("metrics").get("loss") == 0.1
    assert ctx.get_channel().get("loss") == "root value"


# --- field channels (each field of T a key) ------------------------------------------------------


class TrainingState(TypedDict):
    epoch: int
    loss: float
    phase: Literal["INIT", "TRAINING", "DONE"]
    best: float | None
    history: list[float]


@attrs.define
class Settings:
    name: str
    retries: int
    ratio: float = 0.5


@pytest.mark.parametrize("schema", [TrainingState, Settings])
def test_field_channel_is_returned_for_typeddict_and_attrs(schema: type[Any]) -> None:
    ctx = TaskExecutionContext(type("Ctx", (), {"channel": MemoryChannel()})(), "t", 1)
    typed = ctx.get_field_channel(schema)
    assert isinstance(typed, FieldChannel)
    assert typed.schema is schema


def test_field_channel_accepts_values_matching_a_typeddict() -> None:
    typed = FieldChannel(MemoryChannel(), TrainingState)
    typed.set("epoch", 3)
    typed.set("loss", 1)  # an int is a valid float
    typed.set("phase", "TRAINING")
    typed.set("best", None)
    typed.set("history", [0.5])
    assert typed.get("epoch") == 3 and typed.get("phase") == "TRAINING"
    assert sorted(typed.keys()) == ["best", "epoch", "history", "loss", "phase"]


@pytest.mark.parametrize(
    ("key", "value"),
    [("epoch", "three"), ("epoch", 1.5), ("loss", "low"), ("phase", "PAUSED"), ("history", 0.5)],
)
def test_field_channel_rejects_a_wrong_type_naming_the_key(key: str, value: Any) -> None:
    typed = FieldChannel(MemoryChannel(), TrainingState)
    with pytest.raises(TypeError, match=repr(key)):
        typed.set(key, value)
    assert typed.get(key) is None


def test_field_channel_rejects_unknown_keys_listing_the_known_ones() -> None:
    typed = FieldChannel(MemoryChannel(), TrainingState)
    with pytest.raises(KeyError, match="epoch"):
        typed.set("epochs", 1)
    with pytest.raises(KeyError, match="epochs"):
        typed.get("epochs")


def test_field_channel_validates_an_attrs_class() -> None:
    base = MemoryChannel()
    typed = FieldChannel(base, Settings)
    typed.set("name", "run-1")
    typed.set("ratio", 0.75)
    with pytest.raises(TypeError, match="'retries'"):
        typed.set("retries", "many")
    with pytest.raises(KeyError):
        typed.set("unknown", 1)
    typed.set_all(Settings("run-2", 3))
    assert base.get("name") == "run-2" and base.get("retries") == 3 and base.get("ratio") == 0.5


def test_field_channel_update_is_validated_and_atomic() -> None:
    typed = FieldChannel(MemoryChannel(), TrainingState)
    assert typed.update("epoch", lambda v: v + 1, 0) == 1
    with pytest.raises(TypeError):
        typed.update("epoch", lambda v: str(v))
    assert typed.get("epoch") == 1


def test_field_channel_rejects_schemas_it_cannot_read() -> None:
    with pytest.raises(TypeError, match="TypedDict or an attrs class"):
        FieldChannel(MemoryChannel(), dict)


def test_field_channel_inside_a_task_shares_the_run_channel() -> None:
    with workflow("typed") as wf:

        @task(inject_context=True)
        def train(ctx: TaskExecutionContext) -> None:
            state = ctx.get_field_channel(TrainingState)
            state.set("epoch", 1)
            state.set("phase", "DONE")

        @task(inject_context=True)
        def report(ctx: TaskExecutionContext) -> tuple[int, str]:
            return ctx.get_channel().get("epoch"), ctx.get_field_channel(TrainingState).get("phase")

        train >> report
    assert wf.execute() == (1, "DONE")


# --- backends from the hook ------------------------------------------------------------------------


class RecordingChannel(MemoryChannel):
    created: list[str] = []

    def __init__(self, session_id: str) -> None:
        super().__init__(session_id)
        RecordingChannel.created.append(session_id)


class RecordingChannelPlugin:
    @staticmethod
    @hookimpl
    def graflow_register_channel_backends(register: Any) -> None:
        def factory(session_id: str, config: Mapping[str, Any]) -> RecordingChannel:
            return RecordingChannel(session_id)

        register("recording", factory)


def test_channel_backend_comes_from_the_channel_backend_hook() -> None:
    engine = WorkflowEngine(plugins=[RecordingChannelPlugin])
    with workflow("custom_channel") as wf:

        @task(inject_context=True)
        def write(ctx: TaskExecutionContext) -> str:
            ctx.get_channel().set("k", "v")
            return type(ctx.get_channel()).__name__

    result, ctx = wf.execute(engine=engine, channel_backend="recording", ret_context=True)
    assert result == "RecordingChannel"
    assert ctx.session_id in RecordingChannel.created
    assert ctx.channel_backend == "recording"


def test_low_level_create_uses_the_named_channel_backend() -> None:
    engine = WorkflowEngine(plugins=[RecordingChannelPlugin])
    with workflow("ll") as wf:
        task(lambda: 1)
    context = ExecutionContext.create(wf.graph, channel_backend="recording", engine=engine)
    assert isinstance(context.channel, RecordingChannel)


def test_unknown_channel_backend_lists_the_installed_ones() -> None:
    with workflow("unknown") as wf:
        task(lambda: 1)
    with pytest.raises(UnknownNameError, match="no channel backend named 'nosuch'") as info:
        wf.execute(channel_backend="nosuch")
    assert "memory" in info.value.available


@pytest.mark.parametrize("backend", ["threading", "multiprocessing"])
def test_field_update_from_parallel_members_adds_up(backend: str) -> None:
    """The update travels back in the member's channel journal from a process pool: it must pickle."""

    def member(i: int) -> TaskWrapper:
        def body(context: TaskExecutionContext) -> None:
            class Counts(TypedDict):  # local: travels by value to a spawned process
                rows: int

            context.get_field_channel(Counts).update("rows", lambda n: (n or 0) + 10)

        return TaskWrapper(f"m{i}", body, inject_context=True)

    with workflow(f"typed_update_{backend}") as wf:
        (member(0) | member(1) | member(2)).with_execution(backend=backend, max_workers=2)
    _, ctx = wf.execute(ret_context=True)
    assert ctx.channel.get("rows") == 30


def test_a_shared_channel_ships_no_secret_to_other_processes_by_default() -> None:
    config = {"secret_key": "k", "db_password": "pw", "api_token": "t", "aws_secret_access_key": "a", "region": "eu"}
    assert MemoryChannel("run").shipping_config(config) == {"region": "eu"}


def test_field_set_all_writes_nothing_when_one_field_is_bad() -> None:
    base = MemoryChannel()
    fields = FieldChannel(base, TrainingState)
    with pytest.raises(TypeError, match="'loss'"):
        fields.set_all({"epoch": 1, "loss": "low", "phase": "INIT", "best": None, "history": []})  # type: ignore[typeddict-item]
    assert base.keys() == []
