"""Channels (spec section 8): shared config, metrics accumulation, typed messages, typed fields.

``get_typed_channel(T)`` stores one whole, validated ``T`` under any key (upstream Graflow's form);
``get_field_channel(T)`` makes each field of ``T`` a key of its own, type-checked on every write."""

from typing import TypedDict

from graflow import CoordinationBackend, task, workflow


class Progress(TypedDict):
    stage: str
    percent: int


class UserProfile(TypedDict):
    user_id: str
    name: str
    age: int


@task(inject_context=True)
def setup(context) -> None:
    channel = context.get_channel()
    channel.set("config", {"batch_size": 100})
    channel.set("metrics", [])
    context.get_typed_channel(UserProfile).set("current_user", {"user_id": "u1", "name": "Ada", "age": 36})


@task(inject_context=True)
def worker_a(context) -> None:
    context.get_channel().append("metrics", {"task": "worker_a", "rows": 10})
    context.get_channel().increment("processed", 10)


@task(inject_context=True)
def worker_b(context) -> None:
    context.get_channel().append("metrics", {"task": "worker_b", "rows": 32})
    context.get_channel().increment("processed", 32)


@task(inject_context=True)
def report(context, config: dict, processed: int) -> str:
    """``config`` and ``processed`` come from the channel keys of the same names."""
    progress = context.get_field_channel(Progress, namespace="progress")
    progress.set("stage", "report")
    progress.set("percent", 100)
    try:
        progress.set("percent", "done")
    except TypeError as exc:
        print("field channel refused a bad write:", exc)
    profiles = context.get_typed_channel(UserProfile)
    try:
        profiles.set("next_user", {"user_id": "u2", "name": "Grace"})  # no age
    except TypeError as exc:
        print("typed channel refused a bad message:", exc)
    user = profiles.get("current_user")
    return f"batch_size={config['batch_size']} processed={processed} user={user['name']}"


def main() -> None:
    with workflow("channels") as wf:
        setup >> (worker_a | worker_b).with_execution(backend=CoordinationBackend.THREADING) >> report
    result, ctx = wf.execute(ret_context=True)
    channel = ctx.get_channel()
    print(result, "| keys:", sorted(channel.keys()))
    assert result == "batch_size=100 processed=42 user=Ada"
    assert "next_user" not in channel
    assert sorted(m["task"] for m in channel.get("metrics")) == ["worker_a", "worker_b"]
    assert ctx.get_channel("progress").get("percent") == 100


if __name__ == "__main__":
    main()
