"""``graflow run``: the command run as a subprocess (exit codes, output, the JSON run report), plus
unit tests of the recorder for the hooks other features add (retries, cache hits)."""

from __future__ import annotations

import json
import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import textwrap
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from graflow import TaskWrapper, WorkflowEngine, hookimpl, workflow
from graflow.exceptions import TaskExecutionError
from graflow.runner.errors import UsageError
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
    assert recorder.snapshot()[4] == 2  # retried, for the display (seen as they happened)


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


def test_the_report_is_replaced_atomically(tmp_path: Path) -> None:
    target = tmp_path / "run.json"
    target.write_text("old")
    write_report(target, {"schema": 1, "value": 2})
    assert json.loads(target.read_text()) == {"schema": 1, "value": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]  # no temporary file left behind
    target.write_text(json.dumps({"schema": 99}))
    with pytest.raises(ValueError, match="not a graflow run report of schema 1"):
        read_report(target)


def test_param_parsing_rules() -> None:
    assert parse_params(["a=1", "b=x=y", "c="]) == {"a": "1", "b": "x=y", "c": ""}
    with pytest.raises(UsageError, match="given twice"):
        parse_params(["a=1", "a=2"])

    def factory(n: int, ratio: float, name: str, path: Path, data: Any = None, **extra: Any) -> None: ...

    converted = convert_params(
        factory, "factory", {"n": "3", "ratio": "0.5", "name": "007", "path": "/tmp/x", "data": '{"k": 1}', "z": "true"}
    )
    assert converted == {"n": 3, "ratio": 0.5, "name": "007", "path": Path("/tmp/x"), "data": {"k": 1}, "z": True}
