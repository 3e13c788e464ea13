"""Fixtures for the integration tests that need real services.

Docker (tests/integration/test_docker_*.py): a running daemon and the image built by
``scripts/build-test-image.sh``. Locally a missing daemon skips those tests; in CI (``CI=true``)
it fails them, so a broken service can never pass as green.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def service_missing(reason: str) -> None:
    """Skip here, fail in CI."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: services must be up)", pytrace=False)
    pytest.skip(reason)


# --- docker --------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def docker_client() -> Any:
    import docker

    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:
        service_missing(f"no Docker daemon ({exc}); start one with `bash scripts/services.sh`")
    return client


@pytest.fixture(scope="session")
def docker_image(docker_client: Any) -> str:
    """The test image for this interpreter's Python and cloudpickle (cached by tag by the script)."""
    env = {**os.environ, "GRAFLOW_PYTHON": sys.executable}
    proc = subprocess.run(
        ["bash", str(REPO / "scripts" / "build-test-image.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    if proc.returncode != 0:
        service_missing(f"scripts/build-test-image.sh failed:\n{proc.stderr[-3000:]}")
    return proc.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def graflow_containers(docker_client: Any) -> Callable[[int | None], list[Any]]:
    """``graflow_containers(pid=None)``: the containers graflow-docker started from process ``pid``
    (default: this one), running or not. Filtering by pid keeps parallel test runs apart."""
    from graflow_docker.options import MANAGED_LABEL

    def find(pid: int | None = None) -> list[Any]:
        label = f"{MANAGED_LABEL}={pid or os.getpid()}"
        return list(docker_client.containers.list(all=True, filters={"label": label}))

    return find


@pytest.fixture
def no_leftover_containers(graflow_containers: Callable[[int | None], list[Any]]) -> Iterator[None]:
    """Fails the test when a container it started still exists afterwards (success, failure, timeout)."""
    yield
    left = graflow_containers(None)
    assert left == [], f"containers left behind: {[c.name for c in left]}"


# --- redis (tests/integration/test_redis_*.py) ---------------------------------------------------
# A private redis-server per session and worker processes started through their CLI; the helpers
# live in tests/support/graflow_test_redis.py, shared with tests/redis/conftest.py.

sys.path.insert(0, str(REPO / "tests" / "support"))

from graflow_test_redis import redis_client, redis_server, redis_url, start_worker  # noqa: E402, F401
