"""Tracing by installation: on when the process asks for it, and then only; free otherwise."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from graflow.exceptions import GraflowError
from graflow.plugins.manager import LIFECYCLE_HOOKS, PluginHost
from graflow_observability import TracingPlugin, autoload
from graflow_observability.exporters import JsonLinesSpanExporter, processor_for


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRAFLOW_OTEL", "OTEL_"))}
    env.update(extra)
    return env


def run_script(script: str, env: dict[str, str], cwd: Path) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_the_switch_decides(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GRAFLOW_OTEL", "GRAFLOW_OTEL_EXPORTER"):
        monkeypatch.delenv(name, raising=False)
    assert isinstance(autoload.decide(), autoload.TracingOff)  # no provider configured in this process
    monkeypatch.setenv("GRAFLOW_OTEL", "on")
    assert isinstance(autoload.decide(), TracingPlugin)
    monkeypatch.setenv("GRAFLOW_OTEL", "off")
    monkeypatch.setenv("GRAFLOW_OTEL_EXPORTER", "console")
    assert isinstance(autoload.decide(), autoload.TracingOff)  # off wins
    monkeypatch.setenv("GRAFLOW_OTEL", "maybe")
    with pytest.raises(GraflowError, match="GRAFLOW_OTEL='maybe'"):
        autoload.decide()


def test_tracing_off_costs_no_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAFLOW_LOAD_PLUGINS", "")  # the built-ins and this object only
    assert all(hook is None for hook in PluginHost([autoload.TracingOff()]).lifecycle.values())
    traced = PluginHost([TracingPlugin()]).lifecycle
    assert all(traced[name] is not None for name in LIFECYCLE_HOOKS if not name.startswith("graflow_worker"))


def test_an_unknown_exporter_names_the_valid_ones() -> None:
    with pytest.raises(GraflowError, match=r"GRAFLOW_OTEL_EXPORTER='zipkin'.*console, file:PATH, otlp"):
        processor_for("zipkin")


def test_installed_but_not_configured_adds_no_per_task_hook(tmp_path: Path) -> None:
    out = run_script(
        """
        from graflow.plugins.manager import default_host
        host = default_host()
        print(sorted(name for name, hook in host.lifecycle.items() if hook is not None and "task" in name))
        print(repr(host.pm.get_plugin("otel")))
        """,
        clean_env(),
        tmp_path,
    )
    # Only the worker's per-delivery hook (the metrics plugin) is there; the engine's are not.
    assert out.splitlines()[0] == "['graflow_worker_task_done']"
    assert "tracing off" in out.splitlines()[1]


def test_an_exporter_from_the_environment_traces_a_run(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    run_script(
        """
        from graflow import TaskWrapper, workflow
        with workflow("env") as wf:
            TaskWrapper("a", lambda: 1) >> TaskWrapper("b", lambda: 2)
        assert wf.execute() == 2
        """,
        clean_env(GRAFLOW_OTEL_EXPORTER=f"file:{path}"),
        tmp_path,
    )
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert sorted(s["name"] for s in lines) == ["graflow.run", "graflow.task", "graflow.task"]
    run = next(s for s in lines if s["name"] == "graflow.run")
    assert run["resource"]["attributes"]["service.name"] == "graflow"
    assert {s["parent_id"] for s in lines if s["name"] == "graflow.task"} == {run["context"]["span_id"]}


def test_json_lines_exporter_names_its_file_per_process(tmp_path: Path) -> None:
    exporter = JsonLinesSpanExporter(str(tmp_path / "spans-{pid}.jsonl"))
    assert exporter.path == str(tmp_path / f"spans-{os.getpid()}.jsonl")
    exporter.shutdown()


def test_a_tracer_provider_set_later_turns_tracing_on_after_reset_default_host(tmp_path: Path) -> None:
    out = run_script(
        """
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from graflow import TaskWrapper, WorkflowEngine, workflow
        from graflow.plugins import manager

        WorkflowEngine()  # plugins loaded without a provider: tracing off
        print(repr(manager.default_host().pm.get_plugin("otel")))
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        manager.reset_default_host()  # what the README says to do after setting one
        with workflow("late") as wf:
            TaskWrapper("a", lambda: 1)
        wf.execute(engine=WorkflowEngine())
        print(sorted(s.name for s in exporter.get_finished_spans()))
        manager.reset_default_host()  # loading plugins again reuses the same plugin
        first = manager.default_host().pm.get_plugin("otel")
        manager.reset_default_host()
        print(first is manager.default_host().pm.get_plugin("otel"))
        """,
        clean_env(),
        tmp_path,
    )
    off, names, same = out.splitlines()
    assert "tracing off" in off
    assert names == "['graflow.run', 'graflow.task']"
    assert same == "True"


def test_an_exporter_file_that_cannot_be_opened_names_the_variable(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "dir" / "spans.jsonl"
    with pytest.raises(GraflowError, match=r"GRAFLOW_OTEL_EXPORTER=.*cannot open .*Create its directory"):
        processor_for(f"file:{missing}")
