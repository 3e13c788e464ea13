"""Pictures of a graph: ``wf.to_mermaid()``, ``wf.to_dot()``, and ``graflow show`` (static graph or a
run report; mermaid, dot, png through Graphviz)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from graflow import ParallelGroup, TaskExecutionContext, TaskWrapper, Workflow, WorkflowEngine, task, workflow
from graflow.runner.recorder import RunRecorder
from graflow.runner.report import build_report
from graflow.viz import Picture, report_to_dot, report_to_mermaid

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def dot_program() -> str:
    found = shutil.which("dot")
    if found is None:
        reason = "Graphviz is not installed (apt-get install graphviz, or bash scripts/services.sh)"
        if IN_CI:
            pytest.fail(f"{reason}; CI=true: it must be", pytrace=False)
        pytest.skip(reason)
    return found


def render_svg(source: str) -> str:
    proc = subprocess.run([dot_program(), "-Tsvg"], input=source, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"dot rejected the source:\n{proc.stderr}\n{source}"
    return proc.stdout


def etl() -> Workflow:
    with workflow("etl") as wf:
        extract = TaskWrapper("extract", lambda: 1)
        group = (TaskWrapper("clean", lambda: 2) | TaskWrapper("enrich", lambda: 3)).set_group_name("prepare")
        load = TaskWrapper("load", lambda: 4)
        extract >> group >> load
    return wf


def test_mermaid_draws_tasks_edges_and_a_group_as_a_subgraph() -> None:
    assert etl().to_mermaid() == textwrap.dedent(
        """\
        flowchart TD
            t1["extract"]
            subgraph g4["prepare (threading)"]
                t2["clean"]
                t3["enrich"]
            end
            t5["load"]
            t1 --> g4
            g4 --> t5
        """
    )


def test_dot_draws_a_group_as_a_cluster_and_graphviz_accepts_it() -> None:
    source = etl().to_dot()
    assert "subgraph cluster_g4 {" in source and 'label="prepare (threading)"' in source
    assert "t1 -> t2 [lhead=cluster_g4];" in source and "t2 -> t5 [ltail=cluster_g4];" in source
    svg = render_svg(source)
    for name in ("extract", "clean", "enrich", "load", "prepare (threading)"):
        assert f">{name}</text>" in svg


def test_output_is_deterministic() -> None:
    assert etl().to_mermaid() == etl().to_mermaid()
    assert etl().to_dot() == etl().to_dot()


def test_nested_groups_and_awkward_ids_are_drawn_safely() -> None:
    awkward = 'say "hi" <b> #1 \\ end'
    with workflow('quote"d') as wf:
        inner = (TaskWrapper("x", lambda: 0) | TaskWrapper(awkward, lambda: 0)).set_group_name("inner")
        outer = ParallelGroup([inner, TaskWrapper("y", lambda: 0)], name="outer")
        TaskWrapper("subgraph", lambda: 0) >> outer >> TaskWrapper("end", lambda: 0)
    mermaid = wf.to_mermaid()
    assert "say #34;hi#34; #60;b#62; #35;1 \\ end" in mermaid  # entity codes: the quoted label stays closed
    assert mermaid.count("subgraph g") == 2 and mermaid.count("    end\n") == 2
    assert '["subgraph"]' in mermaid and '["end"]' in mermaid  # keywords as labels only, never as ids
    source = wf.to_dot()
    assert 'label="say \\"hi\\" <b> #1 \\\\ end"' in source
    svg = render_svg(source)
    assert "say &quot;hi&quot; &lt;b&gt; #1 \\ end" in svg
    # edges into and out of the outer group attach to its first task (inside the inner cluster)
    assert "t6 -> t1 [lhead=cluster_g5];" in source and "t1 -> t7 [ltail=cluster_g5];" in source


# --- from a run report --------------------------------------------------------------------------------


def executed_report() -> dict[str, Any]:
    with workflow("executed") as wf:

        @task(inject_context=True)
        def loop(ctx: TaskExecutionContext) -> None:
            if ctx.cycle_count < 3:
                ctx.next_iteration()
            else:
                ctx.next_task(TaskWrapper("spawned", lambda: "dyn"))

        def broken() -> None:
            raise ValueError("nope")

        group = (TaskWrapper("ok", lambda: 1) | TaskWrapper("bad", broken)).set_group_name("pair")
        loop >> group >> TaskWrapper("never", lambda: 0)
    recorder = RunRecorder([t for t, n in wf.graph.nodes.items() if isinstance(n, TaskWrapper)])
    engine = WorkflowEngine(plugins=[recorder])
    context = wf.create_context(engine=engine)
    with pytest.raises(Exception) as info:
        engine.execute(context)
    return build_report(
        recorder=recorder, context=context, workflow="executed", status="failed", error=info.value,
        started_at=0.0, finished_at=1.0, options={},
    )  # fmt: skip


def test_a_report_picture_shows_dynamic_tasks_iterations_and_statuses() -> None:
    report = executed_report()
    assert report["tasks"]["spawned"]["dynamic"]
    mermaid = report_to_mermaid(report)
    assert '["loop<br/>3 iterations"]' in mermaid
    assert '["spawned"]' in mermaid and " -.-> " in mermaid  # the dynamic edge is dashed
    assert "classDef succeeded fill:#d4edda" in mermaid and "classDef failed fill:#f8d7da" in mermaid
    assert "classDef not_run fill:#eeeeee" in mermaid
    ids = Picture.from_report(report).ids()
    assert f"class {ids['bad']} failed" in mermaid and f"class {ids['never']} not_run" in mermaid
    assert f"class {ids['spawned']} dynamic" in mermaid
    source = report_to_dot(report)
    assert f'{ids["loop"]} [label="loop\\n3 iterations", fillcolor="#d4edda"' in source
    assert f'{ids["bad"]} [label="bad", fillcolor="#f8d7da"' in source
    assert f"{ids['loop']} -> {ids['spawned']} [style=dashed];" in source
    render_svg(source)


def test_a_cache_hit_is_blue() -> None:
    report = executed_report()
    report["tasks"]["ok"]["status"] = "cache_hit"
    assert "classDef cache_hit fill:#d6e9ff" in report_to_mermaid(report)
    assert 'fillcolor="#d6e9ff"' in report_to_dot(report)


# --- graflow show --------------------------------------------------------------------------------------

FLOW = """
from graflow import TaskWrapper, workflow

with workflow("shown") as wf:
    a, b, c, d = (TaskWrapper(name, lambda: name) for name in "abcd")
    a >> (b | c) >> d
"""


def show(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "graflow.cli", "show", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_show_prints_mermaid_and_dot(tmp_path: Path) -> None:
    (tmp_path / "flow.py").write_text(FLOW)
    mermaid = show("flow.py:wf", cwd=tmp_path)
    assert mermaid.returncode == 0 and mermaid.stdout.startswith("flowchart TD\n")
    dot = show("flow.py", "--format", "dot", "-o", "flow.dot", cwd=tmp_path)
    assert dot.returncode == 0 and (tmp_path / "flow.dot").read_text().startswith('digraph "shown" {')


def test_show_renders_png_with_graphviz(tmp_path: Path) -> None:
    dot_program()
    (tmp_path / "flow.py").write_text(FLOW)
    proc = show("flow.py:wf", "--format", "png", "-o", "graph.png", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "graph.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    default = show("flow.py:wf", "--format", "png", cwd=tmp_path)
    assert default.returncode == 0 and (tmp_path / "shown.png").read_bytes()[:4] == b"\x89PNG"


def test_the_default_png_name_is_a_safe_file_name_from_the_workflow_name(tmp_path: Path) -> None:
    dot_program()
    (tmp_path / "flow.py").write_text(
        "from graflow import TaskWrapper, workflow\n"
        "with workflow('etl/v2') as wf:\n    TaskWrapper('a', lambda: 1)\n"
        "with workflow('../up') as up:\n    TaskWrapper('b', lambda: 1)\n"
    )
    proc = show("flow.py:wf", "--format", "png", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "etl_v2.png").read_bytes()[:4] == b"\x89PNG" and proc.stdout == "wrote etl_v2.png\n"
    proc = show("flow.py:up", "--format", "png", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "up.png").exists() and not (tmp_path.parent / "up.png").exists()


def test_show_png_without_graphviz_says_how_to_install_it(tmp_path: Path) -> None:
    (tmp_path / "flow.py").write_text(FLOW)
    empty = tmp_path / "bin"
    empty.mkdir()
    proc = show("flow.py:wf", "--format", "png", cwd=tmp_path, env={"PATH": str(empty)})
    assert proc.returncode == 2
    assert "needs Graphviz's `dot` program" in proc.stderr
    assert "apt-get install graphviz" in proc.stderr and "brew install graphviz" in proc.stderr
    assert not (tmp_path / "shown.png").exists()


def test_show_draws_the_executed_graph_from_a_run_report(tmp_path: Path) -> None:
    (tmp_path / "flow.py").write_text(FLOW)
    run = subprocess.run(
        [sys.executable, "-m", "graflow.cli", "run", "flow.py", "--report", "run.json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    proc = show("--report", "run.json", cwd=tmp_path)
    assert proc.returncode == 0
    assert "class t1,t2,t3,t4 succeeded" in proc.stdout and "style g5 fill:#d4edda" in proc.stdout
    dot = show("--report", "run.json", "--format", "dot", cwd=tmp_path)
    render_svg(dot.stdout)


def test_show_needs_exactly_one_source(tmp_path: Path) -> None:
    (tmp_path / "flow.py").write_text(FLOW)
    (tmp_path / "bad.json").write_text('{"schema": 7}')
    assert show(cwd=tmp_path).returncode == 2
    assert show("flow.py", "--report", "bad.json", cwd=tmp_path).returncode == 2
    wrong = show("--report", "bad.json", cwd=tmp_path)
    assert wrong.returncode == 2 and "not a graflow run report of schema 1" in wrong.stderr


def test_executed_report_fixture_failed_for_the_right_reason() -> None:
    report = executed_report()
    assert report["error"]["type"] == "graflow.exceptions.ParallelGroupError"
    assert report["graph"]["groups"]["pair"]["status"] == "failed"
