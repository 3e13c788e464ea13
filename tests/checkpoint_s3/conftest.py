"""moto's standalone S3 server on 127.0.0.1, started once per session (never a mocked boto3).

Outside CI a missing ``moto[server]`` skips these tests; in CI (``CI=true``) it fails them.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from graflow.checkpoint.manager import reset_stores


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"moto S3 server unavailable in CI: {reason}")
    pytest.skip(f"moto S3 server unavailable: {reason}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    try:
        import moto.server  # noqa: F401
    except ImportError as exc:
        _unavailable(f"moto[server] is not installed ({exc})")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            errors = proc.stderr.read().decode()[-2000:] if proc.stderr else ""
            _unavailable(f"moto_server exited with {proc.returncode}: {errors}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                break
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                _unavailable("moto_server did not answer within 60 s")
            time.sleep(0.05)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ACCESS_KEY_ID", "testing")
        patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        patch.delenv("AWS_PROFILE", raising=False)
        patch.delenv("AWS_ENDPOINT_URL", raising=False)
        try:
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def s3_config(moto_endpoint: str) -> Iterator[dict[str, Any]]:
    yield {"endpoint_url": moto_endpoint}
    reset_stores()


@pytest.fixture
def s3_client(s3_config: dict[str, Any]) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=s3_config["endpoint_url"])


@pytest.fixture
def bucket(s3_client: Any) -> str:
    name = f"graflow-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    return name
