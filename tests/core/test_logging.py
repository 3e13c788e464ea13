"""Log events: run start/end at INFO, per-task events at DEBUG, failures at ERROR; quiet by default."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from graflow import CoordinationBackend, TaskWrapper, workflow
from graflow.exceptions import TaskExecutionError


@pytest.fixture
def debug_logging() -> Iterator[None]:
    """The application wants debug events (the engine only emits them then)."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    try:
        yield
    finally:
        structlog.reset_defaults()


@pytest.fixture
def info_logging() -> Iterator[None]:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    try:
        yield
    finally:
        structlog.reset_defaults()


def events(logs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [entry for entry in logs if entry["event"] == name]


def chain() -> Any:
    with workflow("logged") as wf:
        TaskWrapper("first", lambda: 1) >> TaskWrapper("second", lambda: 2)
    return wf


def test_run_start_and_end_are_logged_with_session_and_duration() -> None:
    wf = chain()
    with capture_logs() as logs:
        _, ctx = wf.execute(ret_context=True)
    (started,) = events(logs, "workflow_started")
    (finished,) = events(logs, "workflow_finished")
    assert started["log_level"] == finished["log_level"] == "info"
    assert started["session_id"] == finished["session_id"] == ctx.session_id
    assert started["run_id"] == finished["run_id"]
    assert finished["steps"] == 2
    assert finished["duration_s"] >= 0


def test_each_task_start_and_finish_is_logged_at_debug(debug_logging: None) -> None:
    wf = chain()
    with capture_logs() as logs:
        _, ctx = wf.execute(ret_context=True)
    started = events(logs, "task_started")
    succeeded = events(logs, "task_succeeded")
    assert [e["task_id"] for e in started] == ["first", "second"]
    assert [e["task_id"] for e in succeeded] == ["first", "second"]
    for entry in started + succeeded:
        assert entry["log_level"] == "debug"
        assert entry["session_id"] == ctx.session_id
    for entry in succeeded:
        assert entry["duration_s"] >= 0


def test_task_failure_is_logged_at_error_with_task_session_and_duration(info_logging: None) -> None:
    def broken() -> None:
        raise ValueError("bad value")

    with workflow("failing") as wf:
        TaskWrapper("broken", broken)
    with capture_logs() as logs, pytest.raises(TaskExecutionError):
        wf.execute()
    (failed,) = events(logs, "task_failed")
    assert failed["log_level"] == "error"
    assert failed["task_id"] == "broken"
    assert failed["session_id"] == wf.last_context.session_id  # type: ignore[union-attr]
    assert failed["duration_s"] >= 0
    assert "ValueError: bad value" in failed["error"]
    (run_failed,) = events(logs, "workflow_failed")
    assert run_failed["log_level"] == "error" and "duration_s" in run_failed
    assert events(logs, "task_started") == []  # INFO level: no per-task debug events


def test_per_task_events_are_skipped_when_debug_is_disabled(info_logging: None) -> None:
    wf = chain()
    with capture_logs() as logs:
        wf.execute()
    assert events(logs, "task_started") == [] and events(logs, "task_succeeded") == []
    assert len(events(logs, "workflow_started")) == 1


def test_failures_are_logged_even_without_structlog_configuration() -> None:
    structlog.reset_defaults()
    with workflow("unconfigured") as wf:
        TaskWrapper("oops", lambda: 1 / 0)
    with capture_logs() as logs, pytest.raises(TaskExecutionError):
        wf.execute()
    assert [e["task_id"] for e in events(logs, "task_failed")] == ["oops"]


@pytest.mark.parametrize("backend", [CoordinationBackend.DIRECT, CoordinationBackend.THREADING])
def test_group_members_are_logged_like_tasks(debug_logging: None, backend: CoordinationBackend) -> None:
    def broken() -> None:
        raise RuntimeError("member down")

    with workflow("group_logs") as wf:
        (TaskWrapper("good", lambda: 1) | TaskWrapper("bad", broken)).with_execution(backend=backend).with_policy(
            "best_effort"
        )
    with capture_logs() as logs:
        wf.execute()
    assert {e["task_id"] for e in events(logs, "task_started")} == {"good", "bad"}
    assert [e["task_id"] for e in events(logs, "task_succeeded")] == ["good"]
    (failed,) = events(logs, "task_failed")
    assert failed["task_id"] == "bad" and "duration_s" in failed and "session_id" in failed
    (warning,) = events(logs, "group_members_failed")
    assert warning["failed"] == ["bad"]


def test_terminate_is_logged() -> None:
    def stop(ctx: Any) -> None:
        ctx.terminate_workflow("enough")

    with workflow("terminate") as wf:
        TaskWrapper("stopper", stop, inject_context=True)
    with capture_logs() as logs:
        wf.execute()
    (entry,) = events(logs, "workflow_terminated")
    assert entry["task_id"] == "stopper" and entry["message"] == "enough"


@pytest.mark.parametrize("entry", [["-m", "graflow", "worker"], ["-m", "graflow.worker.main"]])
def test_worker_log_options_apply_through_either_entry_point(entry: list[str]) -> None:
    """`graflow worker` used to configure the CLI's own logging first, which made --log-format and
    --log-level of the worker do nothing."""
    args = [sys.executable, *entry, "--queue-backend", "memory", "--log-format", "json", "--log-level", "error"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    (line,) = [raw for raw in done.stderr.splitlines() if raw.strip()]
    event = json.loads(line)
    assert event["event"] == "worker_config_invalid" and event["level"] == "error"
    assert "cannot feed workers" in event["error"]


# --- a library is quiet until asked (issue 12) --------------------------------------------------------

DEMO = Path(__file__).resolve().parents[2] / "examples" / "01_basics" / "hello_workflow.py"


def _run_demo(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k != "GRAFLOW_LOG_LEVEL"}
    return subprocess.run(
        [sys.executable, str(DEMO)], cwd=tmp_path, env={**clean, **env}, capture_output=True, text=True, timeout=60
    )


def test_the_readme_demo_prints_only_its_own_output(tmp_path: Path) -> None:
    done = _run_demo(tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert "workflow_started" not in done.stdout and "workflow_finished" not in done.stdout
    assert done.stdout.splitlines()[0].startswith("loaded 2 rows")


def test_graflow_log_level_shows_the_run_events_on_stderr(tmp_path: Path) -> None:
    done = _run_demo(tmp_path, GRAFLOW_LOG_LEVEL="info")
    assert done.returncode == 0, done.stderr
    assert "INFO" in done.stderr and "graflow.engine: workflow_started" in done.stderr
    assert "workflow_finished" in done.stderr and "steps=" in done.stderr
    assert "workflow_" not in done.stdout


def test_an_unknown_graflow_log_level_is_refused_naming_the_levels(tmp_path: Path) -> None:
    done = _run_demo(tmp_path, GRAFLOW_LOG_LEVEL="loud")
    assert done.returncode != 0
    assert "GRAFLOW_LOG_LEVEL: unknown log level 'loud': use one of debug, info, warning" in done.stderr


def test_failures_reach_stderr_without_any_configuration(tmp_path: Path) -> None:
    script = tmp_path / "fails.py"
    script.write_text(
        "from graflow import TaskWrapper, workflow\n"
        "with workflow('w') as wf:\n"
        "    TaskWrapper('oops', lambda: 1 / 0)\n"
        "try:\n"
        "    wf.execute()\n"
        "except Exception:\n"
        "    print('caught')\n"
    )
    clean = {k: v for k, v in os.environ.items() if k != "GRAFLOW_LOG_LEVEL"}
    done = subprocess.run([sys.executable, str(script)], env=clean, capture_output=True, text=True, timeout=60)
    assert done.stdout == "caught\n"
    assert "task_failed" in done.stderr and "ZeroDivisionError" in done.stderr
    assert "workflow_started" not in done.stderr  # INFO stays quiet


def test_the_applications_standard_logging_takes_over(caplog: pytest.LogCaptureFixture) -> None:
    """Without structlog configured, events go to the stdlib logger of the module, fields attached."""
    structlog.reset_defaults()
    caplog.set_level(logging.DEBUG, logger="graflow")
    _, ctx = chain().execute(ret_context=True)
    records = [r for r in caplog.records if r.name == "graflow.engine"]
    by_event = {r.graflow["event"]: r for r in records}  # type: ignore[attr-defined]
    assert by_event["workflow_started"].levelno == logging.INFO
    assert by_event["workflow_finished"].graflow["session_id"] == ctx.session_id  # type: ignore[attr-defined]
    assert "steps=2" in by_event["workflow_finished"].getMessage()
    started = [r.graflow["task_id"] for r in records if r.graflow["event"] == "task_started"]  # type: ignore[attr-defined]
    assert started == ["first", "second"]  # DEBUG on: per-task events are produced


def test_no_per_task_events_are_built_when_logging_is_at_warning(caplog: pytest.LogCaptureFixture) -> None:
    structlog.reset_defaults()
    caplog.set_level(logging.WARNING, logger="graflow")
    chain().execute()
    assert [r for r in caplog.records if r.name.startswith("graflow")] == []
