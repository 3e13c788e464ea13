"""TypedChannel: each key holds one whole typed message (upstream Graflow's form), validated on write and read."""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

import attrs
import pytest
import typing_extensions

from graflow import TaskExecutionContext, TaskWrapper, TypedChannel, task, workflow
from graflow.channels.memory import MemoryChannel


class Address(TypedDict):
    city: str
    zip: str


class UserProfile(TypedDict):
    user_id: str
    name: str
    age: int
    score: float
    tags: list[str]
    address: Address
    nickname: NotRequired[str]


@attrs.define
class Metrics:
    user_id: str
    logins: int
    tier: Literal["free", "premium"] = "free"


ADA: UserProfile = {
    "user_id": "u1",
    "name": "Ada",
    "age": 36,
    "score": 3,  # an int is a valid float
    "tags": ["math"],
    "address": {"city": "London", "zip": "W1"},
}


@pytest.fixture
def profiles() -> TypedChannel[UserProfile]:
    return TypedChannel(MemoryChannel(), UserProfile)


def test_a_whole_typeddict_message_is_stored_under_any_key(profiles: TypedChannel[UserProfile]) -> None:
    profiles.set("current_user", ADA)
    profiles.set("previous_user", {**ADA, "user_id": "u0", "nickname": "Countess"})
    assert profiles.get("current_user") == ADA
    assert profiles.get("previous_user")["nickname"] == "Countess"
    assert profiles.channel.get("current_user") == ADA  # the same store as the untyped channel
    assert profiles.get("nobody") is None and profiles.get("nobody", {}) == {}
    assert profiles.exists("current_user") and not profiles.exists("nobody")


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ({k: v for k, v in ADA.items() if k != "age"}, "missing required key(s) 'age'"),
        ({**ADA, "age": "36"}, "age expects int, got str: '36'"),
        ({**ADA, "extra": 1}, "unknown key(s) 'extra'"),
        ({**ADA, "tags": ["math", 7]}, "tags[1] expects str, got int: 7"),
        ({**ADA, "address": {"city": "London"}}, "address is missing required key(s) 'zip'"),
        ({**ADA, "address": {"city": "London", "zip": 1}}, "address.zip expects str"),
        ({**ADA, "score": True}, "score expects float, got bool"),
        ("Ada", "expects a UserProfile (a dict), got str"),
    ],
)
def test_a_bad_message_is_refused_saying_why_and_not_stored(
    profiles: TypedChannel[UserProfile], bad: Any, says: str
) -> None:
    with pytest.raises(TypeError) as info:
        profiles.set("current_user", bad)
    assert "value for key 'current_user' must be a valid UserProfile" in str(info.value)
    assert says in str(info.value)
    assert "current_user" not in profiles.channel


def test_an_attrs_message_is_an_instance_or_a_mapping_that_builds_one() -> None:
    metrics = TypedChannel(MemoryChannel(), Metrics)
    metrics.set("m1", Metrics("u1", 3))
    metrics.set("m2", {"user_id": "u2", "logins": 5, "tier": "premium"})
    built = metrics.get("m2")
    assert isinstance(built, Metrics) and built == Metrics("u2", 5, "premium")
    assert metrics.channel.get("m2") == built  # the instance is what is stored
    with pytest.raises(TypeError, match="cannot build a Metrics"):
        metrics.set("m3", {"user_id": "u3"})
    with pytest.raises(TypeError, match="logins expects int"):
        metrics.set("m3", Metrics("u3", "many"))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="tier expects one of \\['free', 'premium'\\]"):
        metrics.set("m3", {"user_id": "u3", "logins": 1, "tier": "gold"})
    with pytest.raises(TypeError, match="expects a Metrics instance, got int"):
        metrics.set("m3", 5)
    assert "m3" not in metrics.channel


def test_reading_a_value_written_untyped_is_refused(profiles: TypedChannel[UserProfile]) -> None:
    profiles.channel.set("current_user", {"name": "no id"})
    with pytest.raises(TypeError, match="written without validation"):
        profiles.get("current_user")


def test_update_validates_the_new_message(profiles: TypedChannel[UserProfile]) -> None:
    profiles.set("u", ADA)
    assert profiles.update("u", lambda p: {**p, "age": p["age"] + 1})["age"] == 37
    with pytest.raises(TypeError, match="update of key 'u'"):
        profiles.update("u", lambda p: {**p, "age": None})
    assert profiles.get("u")["age"] == 37


def test_upstream_send_receive_and_message_type(profiles: TypedChannel[UserProfile]) -> None:
    profiles.send("k", ADA)
    assert profiles.receive("k") == ADA
    assert profiles.message_type is UserProfile
    assert profiles.keys() == ["k"]
    assert profiles.delete("k") and profiles.receive("k") is None


def test_a_type_that_is_no_schema_is_refused_with_the_fix() -> None:
    with pytest.raises(TypeError, match="TypedDict or an attrs class"):
        TypedChannel(MemoryChannel(), dict)


def test_upstream_usage_inside_a_workflow() -> None:
    """context.get_typed_channel(UserProfile).set("current_user", profile), read by the next task."""
    with workflow("typed_messages") as wf:

        @task(inject_context=True)
        def collect(context: TaskExecutionContext) -> None:
            context.get_typed_channel(UserProfile).set("current_user", ADA)

        @task(inject_context=True)
        def report(context: TaskExecutionContext) -> str:
            user = context.get_typed_channel(UserProfile).get("current_user")
            return f"{user['name']} from {user['address']['city']}"

        collect >> report
    assert wf.execute() == "Ada from London"


@pytest.mark.parametrize("backend", ["threading", "multiprocessing"])
def test_messages_written_by_parallel_members_reach_the_run(backend: str) -> None:
    """Writes from a process pool travel back in the channel journal: they must pickle and validate."""

    def member(i: int) -> TaskWrapper:
        def body(context: TaskExecutionContext) -> None:
            class Point(TypedDict):  # local: travels by value to a spawned process
                x: int

            points = context.get_typed_channel(Point)
            points.set(f"p{i}", {"x": i})
            points.update("total", lambda t: {"x": (t or {"x": 0})["x"] + i})

        return TaskWrapper(f"m{i}", body, inject_context=True)

    with workflow(f"typed_messages_{backend}") as wf:
        (member(1) | member(2) | member(3)).with_execution(backend=backend, max_workers=2)
    _, ctx = wf.execute(ret_context=True)
    assert ctx.channel.get("total") == {"x": 6}
    assert [ctx.channel.get(f"p{i}") for i in (1, 2, 3)] == [{"x": 1}, {"x": 2}, {"x": 3}]


def test_one_unresolvable_annotation_leaves_the_other_fields_checked() -> None:
    """A local class in a string annotation cannot be resolved; it used to switch off every check."""

    class Point(TypedDict):
        x: int

    class Shape(TypedDict):
        name: str
        count: int
        origin: Point  # a string here (from __future__ import annotations) naming a local class

    @attrs.define
    class Box:
        count: int
        origin: Point

    shapes = TypedChannel(MemoryChannel(), Shape)
    with pytest.raises(TypeError, match="count expects int"):
        shapes.set("s", {"name": "sq", "count": "many", "origin": {"x": 1}})
    shapes.set("s", {"name": "sq", "count": 4, "origin": {"x": 1}})
    with pytest.raises(TypeError, match="count expects int"):
        TypedChannel(MemoryChannel(), Box).set("b", {"count": "many", "origin": {"x": 1}})


class Inner(typing_extensions.TypedDict):
    a: int


class Outer(TypedDict):
    inner: Inner


def test_typing_extensions_typeddicts_are_schemas_too() -> None:
    """pydantic needs typing_extensions.TypedDict before Python 3.12; typing.is_typeddict misses it."""
    TypedChannel(MemoryChannel(), Inner).set("k", {"a": 1})
    outer = TypedChannel(MemoryChannel(), Outer)
    outer.set("k", {"inner": {"a": 1}})
    with pytest.raises(TypeError, match=r"inner\.a expects int"):
        outer.set("k", {"inner": {"a": "x"}})
