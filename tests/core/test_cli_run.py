"""``graflow run``: the command run as a subprocess (exit codes, output, the JSON run report), plus
unit tests of the recorder for the hooks other features add (retries, cache hits)."""

from __future__ import annotations

import io
import json
import os
import pickle
import pty
import select
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from graflow import TaskWrapper, WorkflowEngine, hookimpl, workflow
from graflow.exceptions import TaskExecutionError, TaskTimeoutError
from graflow.runner.errors import UsageError
from graflow.runner.progress import LiveProgress
from graflow.runner.recorder import RunRecorder
from graflow.runner.report import REPORT_SCHEMA, build_report, read_report, write_report
from graflow.runner.target import convert_params, parse_params

FLOW = """
import os
from graflow import task, workflow, TaskWrapper, Workflow

with workflow("demo") as wf:
    @task
    def extract():
        return [1, 2, 3]

    @task(inject_context=True)
    def grow(ctx, extract):
        if ctx.cycle_count < 3:
            ctx.next_iteration()
        return sum(extract)

    @task
    def a():
        return 1

    @task
    def b():
        if os.environ.get("FAIL_B"):
            raise ValueError("b exploded")
        return 2

    @task
    def load(a, b):
        return a + b

    extract >> grow >> (a | b).set_group_name("fan") >> load


def build(n: int, label, flag: bool = False) -> Workflow:
    with workflow(f"built-{n}") as w:
        TaskWrapper("one", lambda: n) >> TaskWrapper("two", lambda: (label, flag))
    return w
"""


def write(tmp_path: Path, name: str, source: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return path


def graflow(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "graflow.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


# --- success, failure, exit codes ------------------------------------------------------------------


def test_a_successful_run_exits_0_and_reports_every_task(tmp_path: Path) -> None:
    write(tmp_path, "flow.py", FLOW)
    proc = graflow("run", "flow.py:wf", "--report", "out/run.json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "out" / "run.json").read_text())
    assert report["schema"] == REPORT_SCHEMA == 1
    assert (report["workflow"], report["status"], report["error"]) == ("demo", "succeeded", None)
    assert len(report["session_id"]) == 16 and report["run_id"]
    started = datetime.fromisoformat(report["started_at"])
    finished = datetime.fromisoformat(report["finished_at"])
    assert finished >= started and report["duration_s"] >= 0
    tasks = report["tasks"]
    statuses = {t: v["status"] for t, v in tasks.items()}
    assert statuses == dict.fromkeys(["extract", "grow", "a", "b", "load"], "succeeded")
    assert tasks["grow"]["cycles"] == 3 and tasks["extract"]["cycles"] == 1
    assert tasks["a"]["attempts"] == 1 and tasks["a"]["group"] == "fan" and tasks["a"]["worker"] is None
    assert report["summary"] == {
        "tasks": 5, "succeeded": 5, "failed": 0, "skipped": 0, "not_run": 0, "cache_hit": 0, "interrupted": 0,
    }  # fmt: skip
    graph = report["graph"]
    assert graph["groups"] == {"fan": {"members": ["a", "b"], "backend": "threading", "status": "succeeded"}}
    assert sorted(map(tuple, graph["edges"])) == [("extract", "grow"), ("fan", "load"), ("grow", "fan")]
    assert graph["dynamic_edges"] == []
    assert "run succeeded" in proc.stdout and "report: out/run.json" in proc.stdout


def test_the_graflow_console_script_runs_a_workflow(tmp_path: Path) -> None:
    script = shutil.which("graflow", path=str(Path(sys.executable).parent))
    assert script is not None, "the graflow console script is installed with graflow-core"
    write(tmp_path, "flow.py", FLOW)
    proc = subprocess.run(
        [script, "run", "flow.py", "--report", "r.json"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert read_report(tmp_path / "r.json")["workflow"] == "demo"  # the module's only workflow


def test_a_failing_task_exits_1_and_its_traceback_reaches_the_report(tmp_path: Path) -> None:
    write(tmp_path, "flow.py", FLOW)
    proc = graflow("run", "flow.py:wf", "--report", "run.json", cwd=tmp_path, env={"FAIL_B": "1"})
    assert proc.returncode == 1
    report = read_report(tmp_path / "run.json")
    assert report["status"] == "failed"
    assert report["error"]["type"] == "graflow.exceptions.ParallelGroupError"
    assert report["error"]["task_id"] == "fan"
    failed = report["tasks"]["b"]
    assert failed["status"] == "failed"
    assert failed["error"]["type"] == "ValueError" and failed["error"]["message"] == "b exploded"
    assert 'raise ValueError("b exploded")' in failed["error"]["traceback"]
    assert report["tasks"]["load"]["status"] == "not_run"
    assert report["graph"]["groups"]["fan"]["status"] == "failed"
    assert report["summary"]["failed"] == 1 and report["summary"]["not_run"] == 1
    # the caller sees the task's traceback too
    assert 'raise ValueError("b exploded")' in proc.stderr and "run failed: ParallelGroupError" in proc.stderr


def test_a_cancelled_run_exits_1_with_status_cancelled(tmp_path: Path) -> None:
    write(
        tmp_path,
        "cancel.py",
        """
        from graflow import task, workflow

        with workflow("cancelling") as wf:
            @task(inject_context=True)
            def first(ctx):
                ctx.cancel_workflow("no input today")

            @task
            def second():
                return 2

            first >> second
        """,
    )
    proc = graflow("run", "cancel.py", "--report", "run.json", cwd=tmp_path)
    assert proc.returncode == 1
    report = read_report(tmp_path / "run.json")
    assert report["status"] == "cancelled" and "no input today" in report["error"]["message"]
    assert report["tasks"]["second"]["status"] == "not_run"


def test_tasks_a_terminated_run_never_needed_are_skipped_and_dynamic_tasks_are_reported(tmp_path: Path) -> None:
    write(
        tmp_path,
        "dyn.py",
        """
        from graflow import task, workflow, TaskWrapper

        with workflow("dynamic") as wf:
            @task(inject_context=True)
            def fan(ctx):
                for i in range(2):
                    ctx.next_task(TaskWrapper(f"extra_{i}", lambda i=i: i))

            @task(inject_context=True)
            def stop(ctx):
                ctx.terminate_workflow("enough")

            @task
            def never():
                return 0

            fan >> stop >> never
        """,
    )
    proc = graflow("run", "dyn.py:wf", "--report", "run.json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = read_report(tmp_path / "run.json")
    tasks = report["tasks"]
    assert tasks["never"]["status"] == "skipped"
    assert tasks["extra_0"]["dynamic"] and tasks["extra_0"]["status"] in ("succeeded", "skipped")
    assert not tasks["fan"]["dynamic"]
    assert sorted(map(tuple, report["graph"]["dynamic_edges"])) == [("fan", "extra_0"), ("fan", "extra_1")]
    assert {n["id"] for n in report["graph"]["nodes"] if n["dynamic"]} == {"extra_0", "extra_1"}


def test_max_steps_stops_a_runaway_loop(tmp_path: Path) -> None:
    write(
        tmp_path,
        "loop.py",
        """
        from graflow import task, workflow

        with workflow("loop") as wf:
            @task(inject_context=True)
            def spin(ctx):
                ctx.next_iteration()
        """,
    )
    proc = graflow("run", "loop.py", "--max-steps", "4", "--report", "run.json", cwd=tmp_path)
    assert proc.returncode == 1
    report = read_report(tmp_path / "run.json")
    assert report["error"]["type"] == "graflow.exceptions.MaxStepsExceededError"
    assert report["tasks"]["spin"]["cycles"] == 4 and report["steps"] == 4


@pytest.mark.slow
def test_process_pool_members_report_the_process_that_ran_them(tmp_path: Path) -> None:
    write(
        tmp_path,
        "pool.py",
        """
        import os
        from graflow import task, workflow

        with workflow("pool") as wf:
            @task
            def left():
                return os.getpid()

            @task
            def right():
                raise RuntimeError("right failed in the pool")

            (left | right).set_group_name("pool_group").with_execution("multiprocessing", max_workers=2)
        """,
    )
    proc = graflow("run", "pool.py", "--report", "run.json", cwd=tmp_path)
    assert proc.returncode == 1
    tasks = read_report(tmp_path / "run.json")["tasks"]
    assert tasks["left"]["status"] == "succeeded" and tasks["left"]["worker"].startswith("pool-")
    assert tasks["right"]["status"] == "failed" and tasks["right"]["worker"].startswith("pool-")
    assert "right failed in the pool" in tasks["right"]["error"]["traceback"]


# --- Ctrl-C ------------------------------------------------------------------------------------------

SLOW = """
import time
from graflow import task, workflow

with workflow("slow") as wf:
    @task
    def quick():
        return 1

    @task
    def slow():
        time.sleep(120)

    @task
    def after():
        return 3

    quick >> slow >> after
"""


def test_ctrl_c_exits_130_and_still_writes_the_report(tmp_path: Path) -> None:
    write(tmp_path, "slow.py", SLOW)
    proc = subprocess.Popen(
        [sys.executable, "-m", "graflow.cli", "run", "slow.py", "--report", "run.json"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:  # blocking reads: the plain output says when `slow` started
        seen.append(line)
        if "started" in line and line.rstrip().endswith("slow"):
            break
    else:
        raise AssertionError(f"`slow` never started: {seen} {proc.stderr.read() if proc.stderr else ''}")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    report = read_report(tmp_path / "run.json")
    assert report["status"] == "interrupted"
    assert report["error"]["type"] == "KeyboardInterrupt"
    statuses = {t: v["status"] for t, v in report["tasks"].items()}
    assert statuses == {"quick": "succeeded", "slow": "interrupted", "after": "not_run"}
    assert "run interrupted" in err


# --- output ------------------------------------------------------------------------------------------


def test_output_that_is_not_a_terminal_is_one_plain_line_per_event(tmp_path: Path) -> None:
    write(tmp_path, "flow.py", FLOW)
    proc = graflow("run", "flow.py:wf", cwd=tmp_path)
    assert proc.returncode == 0
    assert "\x1b" not in proc.stdout
    lines = [line.split("] ", 1)[1] for line in proc.stdout.splitlines() if line.startswith("[")]
    assert lines[0].startswith("run started    demo") and "5 tasks" in lines[0]
    assert "started        grow (cycle 3)" in lines
    assert sum(1 for line in lines if line.startswith("succeeded")) == 7  # grow three times
    assert lines[-1] == "run finished (5/5 done, 0 failed, 0 retried)"


def test_a_terminal_gets_a_live_status_line(tmp_path: Path) -> None:
    write(
        tmp_path,
        "flow.py",
        """
        import time
        from graflow import task, workflow

        with workflow("tty") as wf:
            @task
            def first():
                time.sleep(0.3)  # long enough for the renderer to draw while it runs

            @task
            def second():
                raise ValueError("second broke")

            first >> second
        """,
    )
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "graflow.cli", "run", "flow.py"],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
        env={**os.environ, "COLUMNS": "120"},
    )
    os.close(follower)
    chunks = []
    while True:
        ready, _, _ = select.select([leader], [], [], 60)
        if not ready:
            break
        try:
            data = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    assert proc.wait(timeout=60) == 1
    screen = b"".join(chunks).decode(errors="replace")
    assert "\x1b[2K" in screen and "\x1b[?25l" in screen and "\x1b[?25h" in screen  # redrawn in place
    assert "/2 done" in screen and "running" in screen and "tty" in screen
    assert "second" in screen and "second broke" in screen  # the failure is printed above the line


# --- targets and usage errors ------------------------------------------------------------------------


def test_a_factory_takes_params_typed_by_its_annotations_else_json(tmp_path: Path) -> None:
    write(tmp_path, "flow.py", FLOW)
    proc = graflow(
        "run", "flow.py:build", "--param", "n=7", "-p", "label=[1, 2]", "-p", "flag=yes", "--report", "r.json",
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = read_report(tmp_path / "r.json")
    assert report["workflow"] == "built-7"
    assert report["params"] == {"n": 7, "label": [1, 2], "flag": True}


def test_a_dotted_module_target_is_imported_from_the_current_directory(tmp_path: Path) -> None:
    pkg = tmp_path / "pipelines"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    write(pkg, "etl.py", FLOW)
    proc = graflow("run", "pipelines.etl:wf", "--report", "r.json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert read_report(tmp_path / "r.json")["status"] == "succeeded"


ODD_NAMES = """
from graflow import TaskWrapper, workflow

with workflow("handler") as handler:
    TaskWrapper("a", int) >> TaskWrapper("b", int, handler="nah")

with workflow("backend") as backend:
    (TaskWrapper("c", int) | TaskWrapper("d", int)).set_group_name("g").with_execution("nope")
"""


@pytest.mark.parametrize(
    ("files", "args", "expected"),
    [
        ({}, ["run", "missing.py:wf"], "no such file: 'missing.py'"),
        ({}, ["run", "no_such_module:wf"], "no module named 'no_such_module'"),
        ({"flow.py": FLOW}, ["run", "flow.py:nope"], "has no 'nope'. Found workflows: wf; factories: build"),
        ({"flow.py": FLOW}, ["run", "flow.py:build", "--param", "oops"], "bad --param 'oops': expected NAME=VALUE"),
        ({"flow.py": FLOW}, ["run", "flow.py:build", "-p", "n=x"], "declares n: int, and 'x' is not one"),
        ({"flow.py": FLOW}, ["run", "flow.py:build"], "needs --param n=..."),
        ({"flow.py": FLOW}, ["run", "flow.py:build", "-p", "n=1", "-p", "z=1"], "has no parameter 'z'"),
        ({"flow.py": FLOW}, ["run", "flow.py:wf", "-p", "n=1"], "is a Workflow object, which takes no --param"),
        (
            {"flow.py": FLOW},
            ["run", "flow.py:wf", "--queue-backend", "kafka"],
            "--queue-backend: no queue backend named 'kafka'; installed: memory",
        ),
        (
            {"two.py": "from graflow import workflow\nw1 = workflow('one')\nw2 = workflow('two')\n"},
            ["run", "two.py"],
            "defines several workflows; name one as two.py:NAME. Found workflows: w1, w2",
        ),
        ({"flow.py": FLOW}, ["run", "flow.py:wf", "--resume", "nowhere/ckpt.pkl"], "--resume nowhere/ckpt.pkl"),
        (
            {"flow.py": FLOW},
            ["run", "flow.py:wf", "--config", "max_retries=-1"],
            "the run's configuration was refused: ValueError: ExecutionContext.create: max_retries must be >= 0",
        ),
        ({"flow.py": FLOW}, ["run", "flow.py:wf", "--config", "max_retries=-1"], "(given: max_retries=-1)"),
        ({"odd.py": ODD_NAMES}, ["run", "odd.py:handler"], "task 'b': no handler named 'nah'; installed: direct"),
        ({"odd.py": ODD_NAMES}, ["run", "odd.py:backend"], "group 'g': no coordination backend named 'nope'"),
    ],
)
def test_bad_input_exits_2_saying_what_to_fix(
    tmp_path: Path, files: dict[str, str], args: list[str], expected: str
) -> None:
    for name, source in files.items():
        write(tmp_path, name, source)
    proc = graflow(*args, cwd=tmp_path, env={"GRAFLOW_LOAD_PLUGINS": ""})
    assert proc.returncode == 2, proc.stderr
    assert expected in proc.stderr
    assert "Traceback" not in proc.stderr


def test_an_import_error_exits_2_with_the_traceback(tmp_path: Path) -> None:
    write(tmp_path, "broken.py", "import os\n\ndef helper():\n    return 1 / 0\n\nhelper()\n")
    proc = graflow("run", "broken.py:wf", cwd=tmp_path)
    assert proc.returncode == 2
    assert "importing 'broken.py' failed: ZeroDivisionError" in proc.stderr
    assert "Traceback" in proc.stderr and "return 1 / 0" in proc.stderr


def test_argparse_errors_exit_2(tmp_path: Path) -> None:
    assert graflow("run", cwd=tmp_path).returncode == 2
    assert graflow("run", "x.py", "--max-steps", "many", cwd=tmp_path).returncode == 2


# --- resume --------------------------------------------------------------------------------------------

CHECKPOINTED = """
import os
from graflow import task, workflow

with workflow("resumable") as wf:
    @task(inject_context=True)
    def prepare(ctx):
        ctx.checkpoint(metadata={"stage": "prepared"}, path=os.environ["CKPT"])
        return 21

    @task
    def finish(prepare):
        if os.environ.get("FAIL_FINISH"):
            raise RuntimeError("finish is not ready")
        return prepare * 2

    prepare >> finish
"""


def test_resume_continues_from_a_checkpoint_a_task_wrote(tmp_path: Path) -> None:
    write(tmp_path, "resumable.py", CHECKPOINTED)
    ckpt = str(tmp_path / "ckpt" / "after_prepare.pkl")
    first = graflow(
        "run", "resumable.py", "--report", "first.json", cwd=tmp_path, env={"CKPT": ckpt, "FAIL_FINISH": "1"}
    )
    assert first.returncode == 1
    report = read_report(tmp_path / "first.json")
    assert report["last_checkpoint"] == ckpt
    assert report["tasks"]["finish"]["status"] == "failed"
    assert f"last checkpoint: {ckpt}" in first.stderr

    second = graflow(
        "run", "resumable.py", "--resume", ckpt, "--report", "second.json", cwd=tmp_path, env={"CKPT": ckpt}
    )
    assert second.returncode == 0, second.stderr
    resumed = read_report(tmp_path / "second.json")
    assert resumed["resumed_from"] == ckpt and resumed["status"] == "succeeded"
    assert resumed["tasks"]["prepare"] | {"started_at": None} == resumed["tasks"]["prepare"] | {
        "status": "succeeded",
        "from_checkpoint": True,
        "cycles": 1,
        "started_at": None,
    }
    assert resumed["tasks"]["finish"]["status"] == "succeeded" and not resumed["tasks"]["finish"]["from_checkpoint"]
    assert resumed["session_id"] == report["session_id"]  # the same run, continued
    assert "last checkpoint" not in second.stdout  # a finished run has nothing left to resume


def test_resume_refuses_a_checkpoint_another_workflow_wrote(tmp_path: Path) -> None:
    write(tmp_path, "resumable.py", CHECKPOINTED)
    write(tmp_path, "flow.py", FLOW)
    ckpt = str(tmp_path / "ckpt" / "c.pkl")
    first = graflow("run", "resumable.py", cwd=tmp_path, env={"CKPT": ckpt, "FAIL_FINISH": "1"})
    assert first.returncode == 1 and f"last checkpoint: {ckpt}" in first.stderr
    second = graflow("run", "flow.py:wf", "--resume", ckpt, "--report", "r.json", cwd=tmp_path, env={"CKPT": ckpt})
    assert second.returncode == 2, second.stderr
    assert "the checkpoint was written by another workflow than 'flow.py:wf'" in second.stderr
    assert "its tasks: finish, prepare" in second.stderr
    assert not (tmp_path / "r.json").exists()


# --- in-process: the recorder and the report -----------------------------------------------------------


def run_recorded(build: Any) -> tuple[RunRecorder, Any, BaseException | None]:
    with workflow("unit") as wf:
        build()
    recorder = RunRecorder([t for t, n in wf.graph.nodes.items() if isinstance(n, TaskWrapper)])
    engine = WorkflowEngine(plugins=[recorder])
    context = wf.create_context(engine=engine)
    error = None
    try:
        engine.execute(context)
    except TaskExecutionError as exc:
        error = exc
    return recorder, context, error


def report_of(recorder: RunRecorder, context: Any, error: BaseException | None, status: str) -> dict[str, Any]:
    return build_report(
        recorder=recorder, context=context, workflow="unit", status=status, error=error,
        started_at=0.0, finished_at=1.0, options={},
    )  # fmt: skip


def test_retries_and_cache_hits_reach_the_report_through_their_hooks() -> None:
    """The retry and cache hooks, called the way the engine calls them (a member run elsewhere
    reports its attempts only with its outcome: "e" below)."""
    recorder, context, _ = run_recorded(lambda: TaskWrapper("a", lambda: 1) >> TaskWrapper("b", lambda: 2))
    boom = OSError("flaky disk")
    recorder.graflow_task_started(task_id="c", cycle=1)
    recorder.graflow_task_retrying(task_id="c", cycle=1, attempt=1, delay_s=0.5, error=boom)
    recorder.graflow_task_retrying(task_id="c", cycle=1, attempt=2, delay_s=1.0, error=boom)
    recorder.graflow_task_succeeded(task_id="c", cycle=1, duration_s=0.25, worker_id=None, attempts=3)
    recorder.graflow_task_cache_hit(task_id="d", cycle=1, key="abc123")
    recorder.graflow_task_succeeded(task_id="d", cycle=1, duration_s=0.0, worker_id="w-7", attempts=1)
    recorder.graflow_task_failed(task_id="e", cycle=1, duration_s=0.1, error=boom, worker_id="w-8", attempts=4)
    report = report_of(recorder, context, None, "succeeded")
    assert report["tasks"]["c"] | {"started_at": None, "finished_at": None} == {
        "status": "succeeded", "attempts": 3, "retries": 2, "cycles": 1, "duration_s": 0.25, "worker": None,
        "error": None, "cache_hits": 0, "from_checkpoint": False, "dynamic": False, "group": None,
        "started_at": None, "finished_at": None,
    }  # fmt: skip
    assert report["tasks"]["d"]["status"] == "cache_hit" and report["tasks"]["d"]["worker"] == "w-7"
    assert report["summary"]["cache_hit"] == 1
    assert (report["tasks"]["e"]["attempts"], report["tasks"]["e"]["retries"]) == (4, 3)
    assert recorder.snapshot()[4] == 5  # retried, for the display: seen as they happened (2) or with an outcome (3)


def test_a_recorder_registers_on_an_engine_whose_specs_lack_the_optional_hooks() -> None:
    engine = WorkflowEngine(plugins=[RunRecorder([])])
    assert engine.host.lifecycle["graflow_task_succeeded"] is not None


def test_task_hooks_receive_no_worker_id_for_tasks_run_in_this_process() -> None:
    seen: list[Any] = []

    class Plugin:
        @hookimpl
        def graflow_task_succeeded(self, task_id: str, worker_id: str | None) -> None:
            seen.append((task_id, worker_id))

        @hookimpl
        def graflow_task_failed(self, task_id: str, worker_id: str | None) -> None:
            seen.append((task_id, worker_id, "failed"))

    def boom() -> None:
        raise ValueError("no")

    with workflow("w") as wf:
        (TaskWrapper("x", lambda: 1) | TaskWrapper("y", lambda: 2)).with_execution("threading") >> TaskWrapper(
            "z", boom
        )
    with pytest.raises(TaskExecutionError):
        wf.execute(engine=WorkflowEngine(plugins=[Plugin()]))
    assert sorted(seen, key=str) == [("x", None), ("y", None), ("z", None, "failed")]


def test_the_report_is_strict_json_with_nan_and_infinity_as_strings(tmp_path: Path) -> None:
    def refuse(name: str) -> None:
        raise AssertionError(f"{name} in the report: not JSON")

    write(tmp_path, "flow.py", FLOW)
    proc = graflow("run", "flow.py:build", "-p", "n=1", "-p", "label=NaN", "--report", "r.json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "r.json").read_text(), parse_constant=refuse)
    assert report["params"] == {"n": 1, "label": "NaN"}
    write_report(tmp_path / "x.json", {"schema": 1, "values": [float("inf"), -float("inf"), {"v": float("nan")}]})
    assert json.loads((tmp_path / "x.json").read_text(), parse_constant=refuse)["values"] == [
        "Infinity", "-Infinity", {"v": "NaN"},
    ]  # fmt: skip


def test_the_report_is_replaced_atomically(tmp_path: Path) -> None:
    target = tmp_path / "run.json"
    target.write_text("old")
    write_report(target, {"schema": 1, "value": 2})
    assert json.loads(target.read_text()) == {"schema": 1, "value": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]  # no temporary file left behind
    target.write_text(json.dumps({"schema": 99}))
    with pytest.raises(ValueError, match="not a graflow run report of schema 1"):
        read_report(target)


def test_optional_annotations_type_params_and_each_annotation_resolves_on_its_own() -> None:
    def factory(
        region: str | None = None,
        dry: bool | None = None,
        n: int | None = 5,
        weird: NoSuchType = None,  # type: ignore[name-defined]  # noqa: F821 - does not resolve
        count: int = 0,
    ) -> None: ...

    raw = {"region": "1", "dry": "no", "n": "null", "weird": "[1]", "count": "3"}
    converted = convert_params(factory, "factory", raw)
    assert converted == {"region": "1", "dry": False, "n": None, "weird": [1], "count": 3}
    assert convert_params(factory, "factory", {"n": "7", "region": "null"}) == {"n": 7, "region": "null"}
    with pytest.raises(UsageError, match="declares dry: bool, and 'maybe' is not one"):
        convert_params(factory, "factory", {"dry": "maybe"})


def test_param_parsing_rules() -> None:
    assert parse_params(["a=1", "b=x=y", "c="]) == {"a": "1", "b": "x=y", "c": ""}
    with pytest.raises(UsageError, match="given twice"):
        parse_params(["a=1", "a=2"])

    def factory(n: int, ratio: float, name: str, path: Path, data: Any = None, **extra: Any) -> None: ...

    converted = convert_params(
        factory, "factory", {"n": "3", "ratio": "0.5", "name": "007", "path": "/tmp/x", "data": '{"k": 1}', "z": "true"}
    )
    assert converted == {"n": 3, "ratio": 0.5, "name": "007", "path": Path("/tmp/x"), "data": {"k": 1}, "z": True}


# --- a closed stdout, an unwritable report, members run elsewhere, group timeouts, odd files ---------

LONG = """
from graflow import TaskWrapper, workflow


def one():
    return 1


with workflow("long") as wf:
    previous = None
    for i in range(2000):
        current = TaskWrapper(f"t{i}", one)
        if previous is not None:
            previous >> current
        previous = current
"""


def test_a_closed_stdout_does_not_change_the_runs_outcome(tmp_path: Path) -> None:
    """`graflow run flow.py | head -1`: the display loses its reader; the run must not fail for it."""
    write(tmp_path, "long.py", LONG)
    proc = subprocess.Popen(
        [sys.executable, "-m", "graflow.cli", "run", "long.py", "--report", "r.json"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline().startswith("[")
    proc.stdout.close()  # the reader went away; 2000 tasks write far more than a pipe buffers
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 0, err
    assert "BrokenPipeError" not in err and "Traceback" not in err
    report = read_report(tmp_path / "r.json")
    assert (report["status"], report["summary"]["succeeded"]) == ("succeeded", 2000)


def test_a_display_that_cannot_write_is_switched_off_and_the_run_goes_on() -> None:
    class ClosedPipe:
        calls = 0

        def on_event(self, kind: str, record: Any, detail: dict[str, Any]) -> None:
            self.calls += 1
            raise BrokenPipeError(32, "Broken pipe")

    listener = ClosedPipe()
    with workflow("unit") as wf:
        TaskWrapper("a", lambda: 1) >> TaskWrapper("b", lambda: 2)
    recorder = RunRecorder(["a", "b"], listener)
    wf.execute(engine=WorkflowEngine(plugins=[recorder]))
    assert listener.calls == 1  # never called again after it failed
    assert isinstance(recorder.display_error, BrokenPipeError)
    assert recorder.snapshot()[:2] == (2, 2)


MARKED = """
import os
from pathlib import Path
from graflow import TaskWrapper, workflow


def mark():
    Path("ran.txt").write_text("yes")
    spoil = os.environ.get("SPOIL_REPORT_DIR")
    if spoil:  # the report's folder turns into a file while the run goes on
        Path(spoil, "keep").unlink()
        Path(spoil).rmdir()
        Path(spoil).write_text("not a folder any more")
    return 1


with workflow("marked") as wf:
    TaskWrapper("mark", mark)
"""


def test_an_unwritable_report_path_is_bad_input_found_before_any_task_runs(tmp_path: Path) -> None:
    write(tmp_path, "marked.py", MARKED)
    (tmp_path / "adir").mkdir()
    proc = graflow("run", "marked.py", "--report", "adir", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "--report adir: is a directory; give a file name" in proc.stderr and "Traceback" not in proc.stderr
    (tmp_path / "afile").write_text("")
    proc = graflow("run", "marked.py", "--report", "afile/r.json", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "--report afile/r.json: cannot write there (FileExistsError" in proc.stderr
    assert not (tmp_path / "ran.txt").exists()


def test_a_report_that_cannot_be_written_after_the_run_is_a_warning_not_the_outcome(tmp_path: Path) -> None:
    write(tmp_path, "marked.py", MARKED)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep").write_text("")
    proc = graflow("run", "marked.py", "--report", "out/r.json", cwd=tmp_path, env={"SPOIL_REPORT_DIR": "out"})
    assert proc.returncode == 0, proc.stderr
    assert "graflow run: warning: the report could not be written to out/r.json" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "run succeeded" in proc.stdout and "report:" not in proc.stdout


def test_members_of_a_backend_that_runs_them_elsewhere_count_as_running_from_submission() -> None:
    recorder = RunRecorder(["a", "b", "c"])
    recorder.graflow_group_started(group_id="g", cycle=1, members=["a", "b"], backend="multiprocessing")
    recorder.graflow_group_started(group_id="h", cycle=1, members=["c"], backend="threading")  # reports its own
    assert recorder.snapshot() == (0, 3, 2, 0, 0, ["a", "b"])
    recorder.graflow_task_succeeded(task_id="a", cycle=1, duration_s=0.1, worker_id="pool-1", attempts=3)
    assert recorder.snapshot() == (1, 3, 1, 0, 2, ["b"])  # a's two retries reached the display too
    report = report_of(recorder, None, KeyboardInterrupt(), "interrupted")
    tasks = report["tasks"]
    assert (tasks["a"]["status"], tasks["a"]["attempts"], tasks["a"]["retries"]) == ("succeeded", 3, 2)
    assert tasks["b"]["status"] == "interrupted" and tasks["b"]["started_at"] is not None
    assert tasks["c"]["status"] == "not_run" and tasks["c"]["started_at"] is None


POOL_RETRY = """
import os
import time
from pathlib import Path
from graflow import TaskWrapper, workflow


def flaky():
    counter = Path(os.environ["COUNTER"])
    seen = int(counter.read_text()) if counter.exists() else 0
    counter.write_text(str(seen + 1))
    if seen < 2:
        raise OSError(f"flaky {seen}")
    return "ok"


def quick():
    return 1


def sleeper():
    time.sleep(120)


with workflow("pool_retry") as retrying:
    (TaskWrapper("flaky", flaky, retries=2, retry_delay=0.01, jitter=False) | TaskWrapper("quick", quick)
     ).with_execution("multiprocessing", max_workers=2)

with workflow("pool_sleep") as sleeping:
    (TaskWrapper("sleeper", sleeper) | TaskWrapper("quick", quick)).with_execution("multiprocessing", max_workers=2)
"""


@pytest.mark.slow
def test_process_pool_members_are_recorded_as_started_with_their_retries(tmp_path: Path) -> None:
    write(tmp_path, "poolretry.py", POOL_RETRY)
    env = {"COUNTER": str(tmp_path / "count")}
    proc = graflow("run", "poolretry.py:retrying", "--report", "r.json", cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    flaky = read_report(tmp_path / "r.json")["tasks"]["flaky"]
    assert (flaky["status"], flaky["attempts"], flaky["retries"]) == ("succeeded", 3, 2)
    assert flaky["started_at"] is not None and flaky["worker"].startswith("pool-")
    assert "run finished (2/2 done, 0 failed, 2 retried)" in proc.stdout


@pytest.mark.slow
def test_ctrl_c_reports_a_running_process_pool_member_interrupted(tmp_path: Path) -> None:
    write(tmp_path, "poolretry.py", POOL_RETRY)
    proc = subprocess.Popen(
        [sys.executable, "-m", "graflow.cli", "run", "poolretry.py:sleeping", "--report", "r.json"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:  # the quick member came back: the sleeper is running in the pool
        if "succeeded      quick" in line:
            break
    else:
        raise AssertionError(f"quick never finished: {proc.stderr.read() if proc.stderr else ''}")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    sleeper = read_report(tmp_path / "r.json")["tasks"]["sleeper"]
    assert sleeper["status"] == "interrupted" and sleeper["started_at"] is not None


GROUP_TIMEOUT = """
import threading
from graflow import TaskWrapper, workflow

released = threading.Event()


def stuck():
    released.wait(60)  # a member the group's timeout gives up on
    return 1


with workflow("gto") as wf:
    (TaskWrapper("stuck", stuck) | TaskWrapper("fast", int)).set_group_name("G").with_execution("threading")
"""


def test_a_group_timeout_fails_the_group_and_its_unfinished_members(tmp_path: Path) -> None:
    write(tmp_path, "gto.py", GROUP_TIMEOUT)
    proc = graflow("run", "gto.py", "--config", "group_timeout=0.3", "--report", "r.json", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    report = read_report(tmp_path / "r.json")
    assert report["status"] == "failed"
    assert report["error"]["type"] == "graflow.exceptions.TaskTimeoutError" and report["error"]["task_id"] == "G"
    assert report["graph"]["groups"]["G"]["status"] == "failed"
    stuck = report["tasks"]["stuck"]
    assert stuck["status"] == "failed" and "timed out after 0.3s" in stuck["error"]["message"]
    assert report["tasks"]["fast"]["status"] == "succeeded"
    assert "run failed: TaskTimeoutError: parallel group 'G' timed out" in proc.stderr


def test_a_group_timeout_error_names_the_group_and_its_unfinished_members_after_pickling() -> None:
    released = threading.Event()
    with workflow("unit") as wf:
        (TaskWrapper("stuck", lambda: released.wait(60)) | TaskWrapper("fast", int)).set_group_name("G")
    try:
        with pytest.raises(TaskTimeoutError) as caught:
            wf.execute(config={"group_timeout": 0.2})
    finally:
        released.set()
    copy = pickle.loads(pickle.dumps(caught.value))
    assert (copy.group_id, copy.unfinished, copy.timeout_s) == ("G", ["stuck"], 0.2)
    assert str(copy) == str(caught.value)


def test_a_file_beside_a_package_of_its_name_runs_the_file(tmp_path: Path) -> None:
    (tmp_path / "etl").mkdir()
    (tmp_path / "etl" / "__init__.py").write_text("raise ImportError('the package was imported, not etl.py')\n")
    write(tmp_path, "etl.py", FLOW)
    proc = graflow("run", "etl.py:wf", "--report", "r.json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert read_report(tmp_path / "r.json")["workflow"] == "demo"


HYPHENATED = """
import os
from graflow import task, workflow


class Box:  # a class of this file travels by value too
    def __init__(self, value):
        self.value = value


with workflow("hyphen") as wf:
    @task
    def left():
        return Box(os.getpid())

    @task
    def right():
        return 2

    @task
    def check(left, right):
        assert left.value != os.getpid(), "left ran in this process"
        return left.value + right

    (left | right).set_group_name("g").with_execution("multiprocessing", max_workers=2) >> check
"""


@pytest.mark.slow
def test_a_file_whose_name_is_not_a_module_name_runs_its_tasks_in_a_process_pool(tmp_path: Path) -> None:
    write(tmp_path, "my-flow.py", HYPHENATED)
    proc = graflow("run", "my-flow.py", "--report", "r.json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    tasks = read_report(tmp_path / "r.json")["tasks"]
    assert {t: v["status"] for t, v in tasks.items()} == dict.fromkeys(["left", "right", "check"], "succeeded")
    assert tasks["left"]["worker"].startswith("pool-")


def test_graflow_log_level_sets_the_default_log_level(tmp_path: Path) -> None:
    write(tmp_path, "flow.py", FLOW)
    proc = graflow("run", "flow.py:wf", cwd=tmp_path, env={"GRAFLOW_LOG_LEVEL": "INFO"})
    assert proc.returncode == 0 and "workflow_started" in proc.stderr, proc.stderr
    quiet = graflow("run", "flow.py:wf", "--log-level", "error", cwd=tmp_path, env={"GRAFLOW_LOG_LEVEL": "info"})
    assert quiet.returncode == 0 and "workflow_started" not in quiet.stderr


def test_a_live_display_whose_terminal_went_away_stops_drawing(monkeypatch: pytest.MonkeyPatch) -> None:
    escaped: list[Any] = []
    monkeypatch.setattr(threading, "excepthook", escaped.append)

    class Terminal(io.StringIO):
        gone = False

        def write(self, text: str) -> int:
            if self.gone:
                raise BrokenPipeError(32, "Broken pipe")
            return super().write(text)

    terminal = Terminal()
    display = LiveProgress(terminal, RunRecorder(["a"]), "unit")
    display.start()
    terminal.gone = True
    assert display._thread is not None
    display._thread.join(timeout=30)  # the render thread ends at its next draw instead of dying noisily
    assert not display._thread.is_alive() and escaped == []
    with pytest.raises(BrokenPipeError):  # what the CLI catches (then sends stdout to /dev/null)
        display.stop()
