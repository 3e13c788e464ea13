"""Fixtures for the compatibility suite: real redis-server and Docker for the ports of upstream's
Redis and Docker examples (marked ``redis`` / ``docker``; never a system Redis, never fakes)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))

from graflow_test_redis import redis_client, redis_server, redis_url, start_worker

__all__ = ["redis_client", "redis_server", "redis_url", "start_worker"]


# --- docker: the real engine and the local test image (as tests/integration/conftest.py) ----------


def _service_missing(reason: str) -> None:
    """Skip here, fail in CI (a broken service must never pass as green)."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (CI=true: services must be up)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def docker_image() -> str:
    """The graflow test image for this interpreter (built and cached by tag by the script)."""
    try:
        import docker

        docker.from_env().ping()
    except Exception as exc:
        _service_missing(f"no Docker daemon ({exc}); start one with `bash scripts/services.sh`")
    env = {**os.environ, "GRAFLOW_PYTHON": sys.executable}
    script = Path(__file__).resolve().parents[2] / "scripts" / "build-test-image.sh"
    proc = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=1200)
    if proc.returncode != 0:
        _service_missing(f"scripts/build-test-image.sh failed:\n{proc.stderr[-3000:]}")
    return proc.stdout.strip().splitlines()[-1]
