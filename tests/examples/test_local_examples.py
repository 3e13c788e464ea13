"""Every example that needs no service runs as a script and checks its own results (exit code 0)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# Run elsewhere: Redis and Docker examples by the integration tests that start those services, the
# checkpoint examples by test_checkpoint_examples.py, which also checks their crash and resume.
RUN_ELSEWHERE = {"05_distributed", "06_docker", "09_checkpoint", "plugins"}

SCRIPTS = sorted(
    p for p in EXAMPLES.glob("*/*.py") if p.parent.name not in RUN_ELSEWHERE and not p.name.startswith("_")
)


@pytest.mark.parametrize("script", SCRIPTS, ids=[f"{p.parent.name}/{p.name}" for p in SCRIPTS])
def test_example_runs_and_checks_itself(script: Path, tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, f"{script.name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"


def test_every_local_example_folder_is_covered() -> None:
    assert len(SCRIPTS) >= 7, SCRIPTS
