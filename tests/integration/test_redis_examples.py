"""The examples of examples/05_distributed run as scripts against a private redis-server and check
themselves (each starts and stops its own worker processes)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "05_distributed"
SCRIPTS = sorted(p for p in EXAMPLES.glob("*.py") if not p.name.startswith("_"))

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def test_every_distributed_example_is_collected() -> None:
    assert {p.name for p in SCRIPTS} >= {
        "distributed_workflow.py",
        "redis_worker.py",
        "environment_switch.py",
    }


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.name for p in SCRIPTS])
def test_distributed_example_runs_and_checks_itself(script: Path, redis_url: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "GRAFLOW_SECRET_KEY"}
    env["REDIS_URL"] = redis_url
    proc = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == 0, f"{script.name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert "ok" in proc.stdout or "metrics:" in proc.stdout or "production:" in proc.stdout
