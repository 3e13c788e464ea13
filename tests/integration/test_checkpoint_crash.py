"""A workflow process killed with SIGKILL resumes from its last checkpoint in a new process and ends with
the results of a run that was never interrupted (issue #4). No sleeps decide anything: the child
writes a marker file once its checkpoint is durable, and the test kills it then."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

CHILD = textwrap.dedent(
    '''
    """A training-like run: a loop that checkpoints every 5 epochs, then a parallel evaluation."""
    import json
    import os
    import sys
    import threading

    from graflow import TaskExecutionContext, WorkflowEngine, task, workflow
    from graflow.core.checkpoint import CheckpointManager

    EPOCHS = 20

    @task
    def prepare():
        return {"rows": list(range(50))}

    @task(inject_context=True)
    def train(context: TaskExecutionContext, prepare):
        channel = context.get_channel()
        epoch = channel.get("epoch", 0) + 1
        weights = channel.get("weights", [0.0] * 8)
        weights = [w * 0.9 + epoch * (i + 1) + sum(prepare["rows"]) / 1000 for i, w in enumerate(weights)]
        channel.set("weights", weights)
        channel.set("epoch", epoch)
        channel.append("history", epoch)
        if epoch % 5 == 0:
            context.checkpoint(metadata={"epoch": epoch})
        crash_at = os.environ.get("CRASH_AT")
        if crash_at and epoch == int(crash_at):
            last = context.execution_context.last_checkpoint_path
            marker = os.environ["MARKER"]
            with open(marker + ".tmp", "w") as f:
                f.write(last)
            os.replace(marker + ".tmp", marker)
            threading.Event().wait()  # stuck for good: the test kills this process now
        if epoch < EPOCHS:
            context.next_iteration()
        return round(sum(weights), 6)

    @task(inject_context=True)
    def eval_train(context: TaskExecutionContext, train):
        return round(train * 0.5, 6)

    @task(inject_context=True)
    def eval_holdout(context: TaskExecutionContext, train):
        context.get_channel().increment("evaluations")
        return round(train * 0.25, 6)

    @task(inject_context=True)
    def report(context: TaskExecutionContext, eval_train, eval_holdout):
        return {"train": eval_train, "holdout": eval_holdout, "epochs": context.get_channel().get("epoch")}

    def build():
        with workflow("crashy") as wf:
            group = (eval_train | eval_holdout).with_execution("threading").set_group_name("evaluate")
            prepare >> train >> group >> report
        return wf

    def summary(context):
        return {
            "report": context.results["report"],
            "results": {k: v for k, v in sorted(context.results.items())},
            "channel": {k: context.channel.get(k) for k in sorted(context.channel.keys())},
            "steps": context.steps,
            "cycles": dict(sorted(context.cycle_counts.items())),
            "completed": sorted(context.completed),
        }

    def main():
        mode, where = sys.argv[1], sys.argv[2]
        if mode == "run":
            context = build().create_context(config={"checkpoint_dir": where})
        else:
            context, metadata = CheckpointManager.resume_from_checkpoint(where)
        WorkflowEngine().execute(context)
        print(json.dumps(summary(context)))
    '''
)


MAIN = "import crashflow; crashflow.main()"  # imported by name, so its tasks are stored by reference


def python_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CRASH_AT", "MARKER", "GRAFLOW_SECRET_KEY")}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")])
    env.update(extra)
    return env


def last_json_line(output: str) -> dict[str, Any]:
    lines = [line for line in output.splitlines() if line.startswith("{")]
    assert lines, output
    loaded: dict[str, Any] = json.loads(lines[-1])
    return loaded


def wait_for(path: Path, proc: subprocess.Popen[str], timeout: float = 60.0) -> str:
    """Poll for the child's marker; fails early if the child died instead."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the child exited with {proc.returncode} before its marker:\n{out}\n{err}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the child never wrote its marker")
        time.sleep(0.02)
    return path.read_text()


@pytest.fixture
def child(tmp_path: Path) -> Path:
    (tmp_path / "crashflow.py").write_text(CHILD)
    return tmp_path


def test_sigkilled_run_resumes_in_a_new_process_with_the_uninterrupted_results(child: Path) -> None:
    clean = subprocess.run(
        [sys.executable, "-c", MAIN, "run", str(child / "clean")],
        cwd=child,
        env=python_env(child),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    expected = last_json_line(clean.stdout)
    assert expected["report"]["epochs"] == 20

    marker = child / "checkpointed"
    proc = subprocess.Popen(
        [sys.executable, "-c", MAIN, "run", str(child / "crashed")],
        cwd=child,
        env=python_env(child, CRASH_AT="13", MARKER=str(marker)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        checkpoint = wait_for(marker, proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert checkpoint.endswith(".pkl") and Path(checkpoint).exists()
    from graflow.core.checkpoint import CheckpointManager

    assert CheckpointManager.load_metadata(checkpoint).user_metadata == {"epoch": 10}
    state = json.loads(Path(checkpoint[: -len(".pkl")] + ".state.json").read_text())
    assert state["pending_tasks"][0]["executable"]["strategy"] == "reference"
    assert state["pending_tasks"][0]["executable"]["module"] == "crashflow"

    resumed = subprocess.run(
        [sys.executable, "-c", MAIN, "resume", checkpoint],
        cwd=child,
        env=python_env(child),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr
    got = last_json_line(resumed.stdout)
    assert got == expected


CRASH_MID_WRITE = textwrap.dedent(
    """
    import os, signal, sys
    from graflow import TaskWrapper, workflow
    from graflow.checkpoint.local import LocalCheckpointStore
    from graflow.core.checkpoint import CheckpointManager

    with workflow("w") as wf:
        TaskWrapper("a", lambda: 1) >> TaskWrapper("b", lambda a: a + 1)
    context = wf.create_context()
    folder = sys.argv[1]
    CheckpointManager.create_checkpoint(context, metadata={"n": 1}, path=folder + "/good.pkl")

    write = LocalCheckpointStore.write

    def dying_write(self, path, pkl, state, meta):
        def die():
            os.kill(os.getpid(), signal.SIGKILL)  # the process dies with the data written, the meta not
            return meta()
        return write(self, path, pkl, state, die)

    LocalCheckpointStore.write = dying_write
    CheckpointManager.create_checkpoint(context, metadata={"n": 2}, path=folder + "/torn.pkl")
    """
)


def test_a_process_killed_mid_write_leaves_no_visible_checkpoint(tmp_path: Path) -> None:
    script = tmp_path / "torn.py"
    script.write_text(CRASH_MID_WRITE)
    folder = tmp_path / "ckpts"
    proc = subprocess.run([sys.executable, str(script), str(folder)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert (folder / "torn.pkl").exists() or list(folder.glob("torn.pkl.tmp-*"))  # the data got written

    from graflow.core.checkpoint import CheckpointManager
    from graflow.exceptions import CheckpointNotFoundError

    listed = CheckpointManager.list_checkpoints(str(folder))
    assert [m.user_metadata for m in listed] == [{"n": 1}]
    with pytest.raises(CheckpointNotFoundError, match="never finished"):
        CheckpointManager.resume_from_checkpoint(str(folder / "torn.pkl"))
    context, _ = CheckpointManager.resume_from_checkpoint(listed[-1].path)
    assert [s.task_id for s in context.queue.pending()] == ["a"]


FIXABLE = textwrap.dedent(
    """
    import json, sys
    from graflow import WorkflowEngine, task, workflow
    from graflow.core.checkpoint import CheckpointManager
    from graflow.exceptions import TaskExecutionError

    @task(inject_context=True)
    def fetch(context):
        context.checkpoint(metadata={"stage": "fetched"})
        return [3, 4]

    @task
    def compute(fetch):
        return sum(x * x for x in fetch) ** 0.5 / 0  # BUG

    def main():
        if sys.argv[1] == "run":
            with workflow("fixable") as wf:
                fetch >> compute
            context = wf.create_context(config={"checkpoint_dir": sys.argv[2]})
            try:
                WorkflowEngine().execute(context)
            except TaskExecutionError:
                print(context.last_checkpoint_path)
        else:
            context, _ = CheckpointManager.resume_from_checkpoint(sys.argv[2])
            print(json.dumps(WorkflowEngine().execute(context)))
    """
)


def test_a_bug_fixed_after_the_crash_stays_fixed_on_resume(tmp_path: Path) -> None:
    """Module-level tasks are stored by reference, so the resumed run uses the code as it is now."""
    module = tmp_path / "fixable.py"
    module.write_text(FIXABLE)
    main = "import fixable; fixable.main()"
    env = python_env(tmp_path)
    crashed = subprocess.run(
        [sys.executable, "-c", main, "run", str(tmp_path / "ck")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert crashed.returncode == 0, crashed.stderr
    checkpoint = [line for line in crashed.stdout.splitlines() if line.endswith(".pkl")][-1]

    module.write_text(FIXABLE.replace(" / 0  # BUG", ""))
    resumed = subprocess.run(
        [sys.executable, "-c", main, "resume", checkpoint],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert last_line_number(resumed.stdout) == 5.0


def last_line_number(output: str) -> float:
    return float(json.loads(output.strip().splitlines()[-1]))
