"""The checkpoint examples (spec section 9) run for real: each crashes, resumes and checks its results."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

FOLDER = Path(__file__).resolve().parents[2] / "examples" / "09_checkpoint"

EXPECTED = {
    "training_loop.py": ["during epoch 47", "at step 40, epoch 40", "Training complete"],
    "etl_pipeline.py": ["warehouse unreachable", "resuming after stage transformed", "'loaded': 4"],
    "state_machine.py": ["carrier API unavailable", "resuming in state PAID", "ORDER_COMPLETE"],
}


def test_every_checkpoint_example_is_covered() -> None:
    assert sorted(p.name for p in FOLDER.glob("*.py")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_checkpoint_example_crashes_resumes_and_checks_itself(name: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(FOLDER / name)], cwd=tmp_path, capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    for line in EXPECTED[name]:
        assert line in proc.stdout, f"{line!r} missing from the output of {name}"
    assert not any(tmp_path.iterdir()), "examples keep their checkpoints in a temporary directory"
