"""A checkpoint asked for inside a parallel group member is taken when the group's barrier completes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from graflow import ParallelGroupError, TaskExecutionContext, TaskWrapper, WorkflowEngine, task, workflow
from graflow.core.checkpoint import CheckpointManager

BACKENDS = ["direct", "threading", "multiprocessing"]


@pytest.fixture(autouse=True)
def checkpoint_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GRAFLOW_CHECKPOINT_DIR", str(tmp_path / "checkpoints"))
    monkeypatch.delenv("GRAFLOW_SECRET_KEY", raising=False)
    return tmp_path / "checkpoints"


def member(name: str, checkpoint: bool) -> TaskWrapper:
    def body(context: TaskExecutionContext) -> str:
        context.get_channel().increment("members_done")
        if checkpoint:
            context.checkpoint(metadata={"asked_by": name})
        return name.upper()

    return TaskWrapper(name, body, inject_context=True)


def grouped(backend: str) -> Any:
    with workflow(f"group_{backend}") as wf:
        first = TaskWrapper("first", lambda: 1)
        group = (member("a", False) | member("b", True) | member("c", False)).with_execution(
            backend=backend, max_workers=2
        )
        group = group.set_group_name("fan_out")

        @task(inject_context=True)
        def after(context: TaskExecutionContext, fan_out: dict[str, str]) -> dict[str, Any]:
            return {"group": dict(sorted(fan_out.items())), "done": context.get_channel().get("members_done")}

        first >> group >> after
    return wf


@pytest.mark.parametrize("backend", BACKENDS)
def test_member_checkpoint_resumes_after_the_group_with_every_member_result(backend: str) -> None:
    expected, context = grouped(backend).execute(ret_context=True)
    assert expected == {"group": {"a": "A", "b": "B", "c": "C"}, "done": 3}
    path = context.last_checkpoint_path
    assert path is not None
    state = json.loads(Path(path[:-4] + ".state.json").read_text())
    assert [p["task_id"] for p in state["pending_tasks"]] == ["after"]
    assert {"first", "a", "b", "c", "fan_out"} <= set(state["completed_tasks"])

    resumed, metadata = CheckpointManager.resume_from_checkpoint(path)
    assert metadata.user_metadata == {"asked_by": "b"}
    assert {k: resumed.results[k] for k in ("a", "b", "c")} == {"a": "A", "b": "B", "c": "C"}
    assert resumed.get_channel().get("members_done") == 3
    assert [s.task_id for s in resumed.queue.pending()] == ["after"]
    assert WorkflowEngine().execute(resumed) == expected
    assert resumed.results == context.results


@pytest.mark.parametrize("backend", ["direct", "threading"])
def test_member_checkpoint_is_taken_once_the_barrier_completes(backend: str, checkpoint_dir: Path) -> None:
    """Written by the engine after the group, so the snapshot holds every member, never a partial group."""
    with workflow("barrier") as wf:
        slow_done: list[str] = []

        def asks(context: TaskExecutionContext) -> str:
            context.checkpoint(metadata={"early": True})
            assert not list(checkpoint_dir.rglob("*.meta.json"))  # nothing written inside the group
            return "asked"

        def slow() -> str:
            slow_done.append("slow")
            return "slow"

        (TaskWrapper("asks", asks, inject_context=True) | TaskWrapper("slow", slow)).with_execution(backend)
    _, context = wf.execute(ret_context=True)
    resumed, _ = CheckpointManager.resume_from_checkpoint(context.last_checkpoint_path or "")
    assert resumed.results["asks"] == "asked" and resumed.results["slow"] == "slow"
    assert resumed.queue.pending() == []
    assert WorkflowEngine().execute(resumed) is None  # nothing left: the group is complete in the checkpoint
    assert resumed.results == context.results


def test_immediate_checkpoint_in_a_member_is_refused_with_the_way_out() -> None:
    def immediate(context: TaskExecutionContext) -> None:
        context.checkpoint(deferred=False)

    with workflow("immediate_member") as wf:
        (TaskWrapper("now", immediate, inject_context=True) | TaskWrapper("other", lambda: 0)).with_execution(
            "threading"
        )
    with pytest.raises(ParallelGroupError, match="Use a deferred checkpoint"):
        wf.execute()


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_member_checkpoint_request_is_written(backend: str, tmp_path: Path) -> None:
    def shard(name: str) -> TaskWrapper:
        path = str(tmp_path / "shards" / name)

        def body(context: TaskExecutionContext) -> str:
            context.checkpoint(metadata={"shard": name}, path=path)
            return name

        return TaskWrapper(name, body, inject_context=True)

    with workflow(f"shards_{backend}") as wf:
        (shard("s0") | shard("s1") | shard("s2")).with_execution(backend=backend, max_workers=2)
    wf.execute()
    written = sorted(p.name for p in (tmp_path / "shards").glob("*.meta.json"))
    assert written == ["s0.meta.json", "s1.meta.json", "s2.meta.json"]
    assert CheckpointManager.load_metadata(str(tmp_path / "shards" / "s1")).user_metadata == {"shard": "s1"}
