"""Throw-away redis-server on 127.0.0.1 for the broker-backed benchmarks.

The benchmarks must not depend on (or pollute) a Redis that happens to be
running, so the harness starts its own on a free port with persistence off
(``--save '' --appendonly no``: no disk I/O in the measured path) and stops it
afterwards. Readiness is checked with a raw RESP ``PING`` so that this module
needs nothing beyond the standard library.

Usage from code::

    with redis_server() as url:      # "redis://127.0.0.1:<port>"
        ...

or ``python benchmarks/redis_server.py`` to keep one running until Ctrl-C.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HOST = "127.0.0.1"


def free_port() -> int:
    """A port the kernel just handed out; racy in theory, so callers retry."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def ping(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _start(executable: str, port: int, workdir: Path, startup_timeout: float) -> subprocess.Popen[bytes]:
    log = (workdir / "redis.log").open("wb")
    proc = subprocess.Popen(
        [
            executable,
            "--port",
            str(port),
            "--bind",
            HOST,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    deadline = time.monotonic() + startup_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        if ping(port):
            return proc
        time.sleep(0.05)
    _stop(proc)
    output = (workdir / "redis.log").read_text(errors="replace")[-2000:]
    raise RuntimeError(f"redis-server did not come up on port {port}:\n{output}")


@contextmanager
def redis_server(
    executable: str = "redis-server",
    port: int | None = None,
    startup_timeout: float = 10.0,
    attempts: int = 3,
) -> Iterator[str]:
    """Run a private redis-server for the duration of the block and yield its URL (no db suffix)."""
    resolved = shutil.which(executable)
    if resolved is None:
        raise FileNotFoundError(f"{executable} not found (apt-get install redis-server)")
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as tmp:
        last_error: RuntimeError | None = None
        for _ in range(attempts if port is None else 1):
            try:
                chosen = port if port is not None else free_port()
                proc = _start(resolved, chosen, Path(tmp), startup_timeout)
                break
            except RuntimeError as error:  # most likely lost the free-port race
                last_error = error
        else:
            assert last_error is not None
            raise last_error
        try:
            yield f"redis://{HOST}:{chosen}"
        finally:
            _stop(proc)


if __name__ == "__main__":
    with redis_server() as url:
        print(url, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
