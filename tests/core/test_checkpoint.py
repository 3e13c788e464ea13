"""Checkpoint and resume (spec section 9, issue #4): when checkpoints are taken and what a resume runs."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from graflow import TaskExecutionContext, TaskWrapper, WorkflowEngine, task, workflow
from graflow.checkpoint import CheckpointManager as PackageCheckpointManager
from graflow.core.checkpoint import CheckpointManager, CheckpointMetadata
from graflow.exceptions import CheckpointError, TaskExecutionError

FAIL: dict[str, bool] = {}
"""Failure switches read by the module-level tasks below; they are stored by reference, so a resumed
run sees the switch as it is now (like a bug fixed after the crash)."""


@pytest.fixture(autouse=True)
def checkpoint_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "checkpoints"
    monkeypatch.setenv("GRAFLOW_CHECKPOINT_DIR", str(folder))
    monkeypatch.delenv("GRAFLOW_SECRET_KEY", raising=False)
    FAIL.clear()
    return folder


@task
def extract() -> list[int]:
    return [1, 2, 3, 4]


@task
def validate(extract: list[int]) -> list[int]:
    return [x for x in extract if x > 0]


@task(inject_context=True)
def transform(context: TaskExecutionContext, validate: list[int]) -> list[int]:
    context.get_channel().append("log", "transform")
    context.checkpoint(metadata={"stage": "transformed"})
    return [x * 10 for x in validate]


@task(inject_context=True)
def load(context: TaskExecutionContext, transform: list[int]) -> int:
    if FAIL.get("load"):
        raise ConnectionError("warehouse unreachable")
    context.get_channel().append("log", "load")
    return sum(transform)


def etl() -> Any:
    with workflow("etl") as wf:
        extract >> validate >> transform >> load
    return wf


def files_of(path: str) -> list[Path]:
    stem = path[: -len(".pkl")]
    return [Path(stem + suffix) for suffix in (".pkl", ".state.json", ".meta.json")]


# --- when checkpoints are written ----------------------------------------------------------------


def test_deferred_checkpoint_is_written_after_the_task_succeeds() -> None:
    result, ctx = etl().execute(ret_context=True)
    assert result == 100
    path = ctx.last_checkpoint_path
    assert path is not None and path.endswith(".pkl")
    assert all(f.exists() for f in files_of(path))
    assert isinstance(ctx.last_checkpoint_metadata, CheckpointMetadata)
    assert ctx.last_checkpoint_metadata.user_metadata == {"stage": "transformed"}
    state = json.loads(Path(path[:-4] + ".state.json").read_text())
    assert state["completed_tasks"] == ["extract", "transform", "validate"]
    assert [p["task_id"] for p in state["pending_tasks"]] == ["load"]  # successors were queued first


def test_a_failed_task_writes_no_checkpoint(checkpoint_dir: Path) -> None:
    @task(inject_context=True)
    def flaky(context: TaskExecutionContext) -> None:
        context.checkpoint(metadata={"never": True})
        raise ValueError("boom")

    with workflow("failing") as wf:
        wf.add(flaky)
    with pytest.raises(TaskExecutionError):
        wf.execute()
    assert wf.last_context is not None and wf.last_context.last_checkpoint_path is None
    assert not checkpoint_dir.exists() or not list(checkpoint_dir.rglob("*.meta.json"))


def test_default_location_is_a_directory_per_session(checkpoint_dir: Path) -> None:
    _, ctx = etl().execute(ret_context=True)
    assert Path(ctx.last_checkpoint_path or "").parent == checkpoint_dir / ctx.session_id
    config_dir = str(checkpoint_dir / "configured")
    assert CheckpointManager.default_location("s1", {"checkpoint_dir": config_dir}) == config_dir + "/s1"
    assert CheckpointManager.default_location("s1", {"checkpoint_dir": "s3://b/p/"}) == "s3://b/p/s1"


# --- what a resume runs ------------------------------------------------------------------------------


def test_resume_runs_only_what_was_pending_with_the_uninterrupted_results() -> None:
    expected, clean = etl().execute(ret_context=True)
    FAIL["load"] = True
    wf = etl()
    with pytest.raises(TaskExecutionError, match="warehouse unreachable"):
        wf.execute()
    assert wf.last_context is not None
    path = wf.last_context.last_checkpoint_path
    assert path is not None

    FAIL["load"] = False  # the fix is deployed: by-reference tasks pick it up
    context, metadata = CheckpointManager.resume_from_checkpoint(path)
    assert metadata.user_metadata == {"stage": "transformed"}
    assert metadata.session_id == wf.last_context.session_id
    assert metadata.steps == 3
    assert metadata.checkpoint_id.startswith(metadata.session_id)
    assert [s.task_id for s in context.queue.pending()] == ["load"]
    assert context.completed == {"extract", "validate", "transform"}

    assert WorkflowEngine().execute(context) == expected
    assert context.results == clean.results
    assert context.get_channel().get("log") == ["transform", "load"]
    assert context.steps == clean.steps


def test_host_code_checkpoint_round_trip() -> None:
    wf = etl()
    context = wf.create_context()
    path, metadata = CheckpointManager.create_checkpoint(context, metadata={"batch": "b-1", "records": 10})
    restored, loaded = CheckpointManager.resume_from_checkpoint(path)
    assert restored.steps == context.steps
    assert restored.session_id == context.session_id
    assert loaded.user_metadata == {"batch": "b-1", "records": 10}
    assert loaded.created_at == metadata.created_at
    assert restored.last_checkpoint_path == path
    assert WorkflowEngine().execute(restored) == 100


def test_both_import_paths_name_one_manager() -> None:
    assert CheckpointManager is PackageCheckpointManager


def test_explicit_paths_get_the_pkl_suffix_and_directories_get_a_name(tmp_path: Path) -> None:
    context = etl().create_context()
    path, _ = CheckpointManager.create_checkpoint(context, path=str(tmp_path / "manual" / "snapshot"))
    assert path == str(tmp_path / "manual" / "snapshot.pkl")
    assert all(f.exists() for f in files_of(path))
    path, _ = CheckpointManager.create_checkpoint(context, path=str(tmp_path / "folder") + "/")
    assert Path(path).parent == tmp_path / "folder" and path.endswith(".pkl")
    resumed, _ = CheckpointManager.resume_from_checkpoint(str(tmp_path / "manual" / "snapshot"))
    assert resumed.session_id == context.session_id


def test_a_resumed_run_keeps_checkpointing_in_its_session(checkpoint_dir: Path) -> None:
    @task(inject_context=True)
    def counter(context: TaskExecutionContext) -> int:
        channel = context.get_channel()
        n = channel.increment("n")
        context.checkpoint(metadata={"n": n})
        if n < 4:
            context.next_iteration()
        return int(n)

    with workflow("count") as wf:
        wf.add(counter)
    context = wf.create_context()
    WorkflowEngine().execute(context)
    listed = CheckpointManager.list_checkpoints(CheckpointManager.default_location(context.session_id))
    assert [m.user_metadata["n"] for m in listed] == [1, 2, 3, 4]
    resumed, _ = CheckpointManager.resume_from_checkpoint(listed[1].path)
    assert WorkflowEngine().execute(resumed) == 4
    assert resumed.cycle_counts == context.cycle_counts
    again = CheckpointManager.list_checkpoints(CheckpointManager.default_location(context.session_id))
    assert [m.user_metadata["n"] for m in again] == [1, 2, 3, 4, 3, 4]


# --- immediate checkpoints ---------------------------------------------------------------------------


def test_immediate_checkpoint_returns_path_and_the_task_runs_again_on_resume(tmp_path: Path) -> None:
    returned: list[tuple[str, CheckpointMetadata]] = []

    @task(inject_context=True)
    def loop(context: TaskExecutionContext) -> str:
        channel = context.get_channel()
        if context.cycle_count == 3 and not channel.get("saved"):
            channel.set("saved", True)  # written before the snapshot, so the re-run skips this branch
            taken = context.checkpoint(metadata={"at": 3}, deferred=False, path=str(tmp_path / "now"))
            assert taken is not None and context.execution_context.last_checkpoint_path == taken[0]
            returned.append(taken)
        channel.append("seen", (context.cycle_count, channel.get("i", 0)))
        channel.set("i", channel.get("i", 0) + 1)
        if context.cycle_count < 5:
            context.next_iteration()
        return "done"

    with workflow("loop") as wf:
        wf.add(loop)
    context = wf.create_context()
    WorkflowEngine().execute(context)
    assert [path for path, _ in returned] == [str(tmp_path / "now.pkl")]
    assert returned[0][1].resumes_current_task

    resumed, metadata = CheckpointManager.resume_from_checkpoint(returned[0][0])
    assert metadata.resumes_current_task and metadata.steps == 3
    assert [s.task_id for s in resumed.queue.pending()] == ["loop"]
    assert resumed.cycle_counts == {"loop": 2} and resumed.steps == 2
    assert resumed.get_channel().get("seen") == [(1, 0), (2, 1)]
    WorkflowEngine().execute(resumed)
    # cycle 3 ran again, with the channel as it was at the checkpoint: the same run as without a stop
    assert resumed.get_channel().get("seen") == context.get_channel().get("seen")
    assert resumed.steps == context.steps
    assert resumed.cycle_counts == context.cycle_counts


def test_immediate_checkpoint_puts_the_task_before_what_was_already_queued(tmp_path: Path) -> None:
    @task(inject_context=True)
    def first(context: TaskExecutionContext) -> str:
        context.checkpoint(deferred=False, path=str(tmp_path / "first"))
        return "first"

    @task
    def second() -> str:
        return "second"

    with workflow("two_roots") as wf:
        wf.add(first, second)
    context = wf.create_context()
    WorkflowEngine().execute(context)
    resumed, _ = CheckpointManager.resume_from_checkpoint(str(tmp_path / "first"))
    assert [s.task_id for s in resumed.queue.pending()] == ["first", "second"]
    WorkflowEngine().execute(resumed)
    assert resumed.results == context.results


# --- what is saved -----------------------------------------------------------------------------------


def test_dynamic_tasks_and_iteration_data_survive_a_resume(tmp_path: Path) -> None:
    offset = 5

    @task(inject_context=True)
    def spawn(context: TaskExecutionContext) -> None:
        context.next_task(TaskWrapper("dynamic_child", lambda value=offset: value * 2))
        context.checkpoint(path=str(tmp_path / "dyn"))

    @task(inject_context=True)
    def countdown(context: TaskExecutionContext, n: int = 3) -> int:
        if n > 0:
            context.next_iteration(n - 1)
            context.checkpoint(path=str(tmp_path / f"count{n}"))
        return n

    with workflow("dynamic") as wf:
        wf.add(spawn, countdown)
    context = wf.create_context()
    WorkflowEngine().execute(context)
    assert context.results["dynamic_child"] == 10

    resumed, _ = CheckpointManager.resume_from_checkpoint(str(tmp_path / "dyn"))
    assert "dynamic_child" in resumed.graph.dynamic
    WorkflowEngine().execute(resumed)
    assert resumed.results == context.results

    resumed, _ = CheckpointManager.resume_from_checkpoint(str(tmp_path / "count2"))
    assert [(s.task_id, s.data) for s in resumed.queue.pending()] == [("countdown", 1)]
    WorkflowEngine().execute(resumed)
    assert resumed.results["countdown"] == 0


def read_json(path: str, suffix: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(Path(path[: -len(".pkl")] + suffix).read_text())
    return loaded


def test_state_and_meta_files_follow_the_spec_layout() -> None:
    path, _ = CheckpointManager.create_checkpoint(etl().create_context(), metadata={"project": "p"})
    state = read_json(path, ".state.json")
    meta = read_json(path, ".meta.json")
    assert state["schema_version"] == 2
    assert set(state) >= {
        "session_id",
        "steps",
        "completed_tasks",
        "cycle_counts",
        "pending_tasks",
        "current_task",
    }
    assert state["resume_from_current_task"] is False
    assert state["pending_tasks"] == [
        {
            "task_id": "extract",
            "executable": {
                "strategy": "reference",
                "module": extract.func.__module__,
                "name": "extract",
                "qualname": "extract",
            },
            "has_data": False,
        }
    ]
    assert set(meta) >= {"checkpoint_id", "session_id", "created_at", "steps", "start_node", "user_metadata"}
    assert meta["schema_version"] == 2
    assert meta["start_node"] == "extract"
    assert meta["backend"] == {"queue": "memory", "channel": "memory"}
    assert meta["user_metadata"] == {"project": "p"}
    assert meta["created_at"].endswith("Z")
    assert set(meta["files"]) == {"pkl", "state"}


def test_lambdas_and_closures_are_stored_by_value() -> None:
    with workflow("closures") as wf:
        wf.add(TaskWrapper("closure", lambda: 7))
    path, _ = CheckpointManager.create_checkpoint(wf.create_context())
    assert read_json(path, ".state.json")["pending_tasks"][0]["executable"] == {"strategy": "value"}
    resumed, _ = CheckpointManager.resume_from_checkpoint(path)
    assert WorkflowEngine().execute(resumed) == 7


def test_secrets_and_live_objects_in_config_are_not_saved(tmp_path: Path) -> None:
    lock = threading.Lock()
    secret = "hunter2-do-not-store"
    config = {"secret_key": secret, "aws_secret_access_key": secret, "client": lock, "batch_size": 10}
    context = etl().create_context(config=config)
    path, _ = CheckpointManager.create_checkpoint(context, path=str(tmp_path / "cfg"))
    state = json.loads((tmp_path / "cfg.state.json").read_text())
    assert sorted(state["dropped_config_keys"]) == ["aws_secret_access_key", "client", "secret_key"]
    assert b"batch_size" in (tmp_path / "cfg.pkl").read_bytes()
    for file in tmp_path.iterdir():
        assert secret.encode() not in file.read_bytes(), file
    resumed, _ = CheckpointManager.resume_from_checkpoint(path, config={"secret_key": secret, "client": lock})
    assert resumed.config["batch_size"] == 10
    assert resumed.config["client"] is lock


def test_metadata_must_be_json_and_nothing_is_written_otherwise(tmp_path: Path) -> None:
    context = etl().create_context()
    with pytest.raises(CheckpointError, match="JSON-serializable"):
        CheckpointManager.create_checkpoint(context, metadata={"when": object()}, path=str(tmp_path / "bad"))
    assert not any(tmp_path.iterdir())


def test_unpicklable_channel_value_fails_clearly(tmp_path: Path) -> None:
    context = etl().create_context()
    context.channel.set("lock", threading.Lock())
    with pytest.raises(CheckpointError, match="cannot pickle the run"):
        CheckpointManager.create_checkpoint(context, path=str(tmp_path / "lock"))
    assert not any(tmp_path.glob("*.meta.json"))


def test_checkpoint_files_are_not_left_as_temporaries(tmp_path: Path) -> None:
    context = etl().create_context()
    for _ in range(3):
        CheckpointManager.create_checkpoint(context, path=str(tmp_path / "same"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["same.meta.json", "same.pkl", "same.state.json"]
    assert os.stat(tmp_path / "same.pkl").st_size > 0


def test_a_join_waiting_on_a_branch_is_released_after_resume(tmp_path: Path) -> None:
    @task(inject_context=True)
    def left(context: TaskExecutionContext) -> str:
        context.checkpoint(path=str(tmp_path / "left"))
        return "L"

    @task
    def right() -> str:
        return "R"

    @task
    def join(left: str, right: str) -> str:
        return left + right

    with workflow("diamond") as wf:
        start = TaskWrapper("start", lambda: None)
        start >> left >> join
        start >> right >> join
    expected, context = wf.execute(ret_context=True)
    resumed, _ = CheckpointManager.resume_from_checkpoint(str(tmp_path / "left"))
    assert [s.task_id for s in resumed.queue.pending()] == ["right"]
    assert resumed.waiting == {"join": 1}
    assert WorkflowEngine().execute(resumed) == expected == "LR"
    assert resumed.results == context.results


def test_a_deferred_checkpoint_is_written_when_its_task_terminates_the_run(tmp_path: Path) -> None:
    path = str(tmp_path / "final")

    @task(inject_context=True)
    def stop(context: TaskExecutionContext) -> str:
        context.checkpoint(metadata={"why": "done early"}, path=path)
        context.terminate_workflow("enough")
        return "stopped"

    with workflow("terminate_ckpt") as wf:
        stop >> TaskWrapper("never", lambda: "never")
    _, ctx = wf.execute(ret_context=True)
    assert ctx.last_checkpoint_path == path + ".pkl"
    restored, metadata = CheckpointManager.resume_from_checkpoint(path)
    assert metadata.user_metadata == {"why": "done early"}
    assert len(restored.queue) == 0 and "stop" in restored.completed


def test_a_checkpoint_taken_after_a_failure_resumes_the_failed_task(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The docs promise a resume after 'a failure you fixed': the failed task must still be pending,
    and its failed attempt must not count against max_cycles."""
    monkeypatch.setenv("GRAFLOW_TEST_TRANSFORM_BROKEN", "1")

    def transform(extract: list[int]) -> list[int]:
        if os.environ.get("GRAFLOW_TEST_TRANSFORM_BROKEN") == "1":
            raise RuntimeError("bad data")
        return [x * 2 for x in extract]

    with workflow("fixable") as wf:
        (
            TaskWrapper("extract", lambda: [1, 2, 3])
            >> TaskWrapper("transform", transform, max_cycles=1)
            >> TaskWrapper("load", lambda transform: sum(transform))
        )
    ctx = wf.create_context()
    with pytest.raises(TaskExecutionError, match="bad data"):
        WorkflowEngine().execute(ctx)
    assert [s.task_id for s in ctx.queue.pending()] == ["transform"]
    path, _ = CheckpointManager.create_checkpoint(ctx, path=str(tmp_path / "after_failure"))

    monkeypatch.setenv("GRAFLOW_TEST_TRANSFORM_BROKEN", "0")  # the fix
    restored, _ = CheckpointManager.resume_from_checkpoint(path)
    assert WorkflowEngine().execute(restored) == 12
    assert WorkflowEngine().execute(ctx) == 12  # the same context, executed again, also picks it up
