"""structlog events: run start/end always at INFO, per-task events at DEBUG, failures at ERROR."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
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
