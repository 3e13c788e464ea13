"""The examples of examples/06_docker run as scripts against the real engine and check themselves."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "06_docker"
SCRIPTS = sorted(p for p in EXAMPLES.glob("*.py") if not p.name.startswith("_"))

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def alt_image(docker_client: Any, docker_image: str) -> Iterator[str]:
    """The test image under a second name: a second "environment" for handler_per_environment.py."""
    repository, _, tag = docker_image.rpartition(":")
    alt = f"{repository}:{tag}-alt"
    docker_client.images.get(docker_image).tag(repository, f"{tag}-alt")
    yield alt
    docker_client.images.remove(alt)  # only the extra tag goes


def test_every_docker_example_is_collected() -> None:
    assert {p.name for p in SCRIPTS} >= {
        "docker_handler.py",
        "sandbox_user_code.py",
        "handler_per_environment.py",
    }


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.name for p in SCRIPTS])
def test_docker_example_runs_and_checks_itself(
    script: Path,
    docker_image: str,
    alt_image: str,
    graflow_containers: Callable[[int | None], list[Any]],
    tmp_path: Path,
) -> None:
    env = {**os.environ, "GRAFLOW_DOCKER_IMAGE": docker_image, "GRAFLOW_DOCKER_IMAGE_ALT": alt_image}
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stdout, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 0, f"{script.name} failed:\n{stdout[-3000:]}\n{stderr[-3000:]}"
    assert graflow_containers(proc.pid) == []
