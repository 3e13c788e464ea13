"""Channels (spec section 8): shared config, metrics accumulation, progress, typed channels."""

from typing import TypedDict

from graflow import CoordinationBackend, task, workflow


class Progress(TypedDict):
    stage: str
    percent: int


@task(inject_context=True)
def setup(context) -> None:
    channel = context.get_channel()
    channel.set("config", {"batch_size": 100})
    channel.set("metrics", [])


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
    typed = context.get_typed_channel(Progress, namespace="progress")
    typed.set("stage", "report")
    typed.set("percent", 100)
    try:
        typed.set("percent", "done")
    except TypeError as exc:
        print("typed channel refused a bad write:", exc)
    return f"batch_size={config['batch_size']} processed={processed}"


def main() -> None:
    with workflow("channels") as wf:
        setup >> (worker_a | worker_b).with_execution(backend=CoordinationBackend.THREADING) >> report
    result, ctx = wf.execute(ret_context=True)
    channel = ctx.get_channel()
    print(result, "| keys:", sorted(channel.keys()))
    assert result == "batch_size=100 processed=42"
    assert sorted(m["task"] for m in channel.get("metrics")) == ["worker_a", "worker_b"]
    assert ctx.get_channel("progress").get("percent") == 100


if __name__ == "__main__":
    main()
