"""A plugin published by someone else is found through its entry point and used by name (issue #2)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "examples" / "plugins" / "graflow-timing"

USER_PROGRAM = textwrap.dedent(
    """
    from graflow import task, workflow
    from graflow_timing.plugin import DURATIONS

    @task(handler="timing")
    def slow_add():
        return 1 + 1

    with workflow("uses_timing") as wf:
        wf.add(slow_add)

    out = wf.execute(slow_add)
    assert out["result"] == 2 and out["seconds"] >= 0, out
    assert "slow_add" in DURATIONS, DURATIONS
    print("OK", out["result"])
    """
)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pip-installs the example plugin into its own folder, as a user would install a package."""
    target = tmp_path_factory.mktemp("site")
    uv = shutil.which("uv")
    if uv is not None:
        cmd = [uv, "pip", "install", "--no-deps", "--target", str(target), str(PLUGIN)]
    else:
        cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(target), str(PLUGIN)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    assert (target / "graflow_timing").is_dir()
    return target


def _run(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=120)


def test_installed_plugin_handler_is_used_by_name_without_registration(installed: Path) -> None:
    proc = _run(installed, "-c", USER_PROGRAM)
    assert proc.returncode == 0, proc.stderr
    assert "OK 2" in proc.stdout


def test_graflow_plugins_lists_the_installed_plugin(installed: Path) -> None:
    proc = _run(installed, "-m", "graflow", "plugins", "--json")
    assert proc.returncode == 0, proc.stderr
    infos = {i["name"]: i for i in json.loads(proc.stdout)}
    assert infos["timing"]["distribution"] == "graflow-timing"
    assert infos["timing"]["version"] == "1.0.0"
    assert ["handler", "timing"] in infos["timing"]["provides"]
    assert ["handler", "direct"] in infos["graflow.builtin.handlers"]["provides"]


def test_without_the_plugin_the_handler_name_is_unknown_and_listed(tmp_path: Path) -> None:
    proc = _run(tmp_path, "-c", USER_PROGRAM.replace("from graflow_timing.plugin import DURATIONS", "DURATIONS={}"))
    assert proc.returncode != 0
    assert "no handler named 'timing'; installed:" in proc.stderr
    assert "direct" in proc.stderr and "graflow plugins" in proc.stderr
