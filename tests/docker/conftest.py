"""A stand-in Docker engine for unit tests: a "container" is the runner in a local Python process
that, like the image, has only the standard library and cloudpickle (no graflow, no test modules).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import docker.errors
import pytest
import requests.exceptions

from graflow_docker.options import IO_MOUNT

IMAGE = "fake-image:latest"


class FakeContainer:
    def __init__(self, engine: FakeDocker, kwargs: dict[str, Any]) -> None:
        self.engine = engine
        self.kwargs = kwargs
        self.id = uuid.uuid4().hex
        self.attrs: dict[str, Any] = {"State": {"OOMKilled": False}}
        self.proc: subprocess.Popen[bytes] | None = None
        self.removed = False

    def _host_dir(self) -> str:
        volumes = self.kwargs["volumes"]
        if isinstance(volumes, dict):
            return next(host for host, spec in volumes.items() if spec["bind"] == IO_MOUNT)
        return next(v.split(":")[0] for v in volumes if v.split(":")[1] == IO_MOUNT)

    def start(self) -> None:
        if self.engine.on_start is not None:
            self.engine.on_start(self)
            return
        io_dir = self._host_dir()
        command = [a.replace(IO_MOUNT, io_dir) for a in self.kwargs["command"]]
        assert command[0] == "python3"
        env = {"PYTHONPATH": self.engine.site, **self.kwargs.get("environment", {})}
        # -S: no site-packages, so the "image" has the stdlib and cloudpickle only.
        self.proc = subprocess.Popen([self.engine.python, "-S", *command[1:]], env=env, cwd=io_dir)

    def wait(self, timeout: float | None = None) -> dict[str, Any]:
        if self.proc is None:
            return {"StatusCode": self.engine.exit_code}
        try:
            return {"StatusCode": self.proc.wait(timeout)}
        except subprocess.TimeoutExpired:
            raise requests.exceptions.ReadTimeout("read timed out") from None

    def reload(self) -> None:
        pass

    def logs(self, tail: int | None = None) -> bytes:
        return self.engine.logs

    def remove(self, force: bool = False) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.removed = True
        self.engine.live.pop(self.id, None)


class FakeImages:
    def __init__(self, engine: FakeDocker) -> None:
        self.engine = engine

    def get(self, name: str) -> object:
        if name not in self.engine.present:
            raise docker.errors.ImageNotFound(f"No such image: {name}")
        return object()


class FakeContainers:
    def __init__(self, engine: FakeDocker) -> None:
        self.engine = engine

    def create(self, **kwargs: Any) -> FakeContainer:
        container = FakeContainer(self.engine, kwargs)
        self.engine.created.append(container)
        self.engine.live[container.id] = container
        return container

    def list(self, all: bool = False, filters: dict[str, str] | None = None) -> list[FakeContainer]:
        return list(self.engine.live.values())


class FakeDocker:
    """What DockerTaskHandler uses of ``docker.DockerClient``, plus knobs for the failure cases."""

    def __init__(self, site: str) -> None:
        self.site = site
        self.python = sys.executable  # the "image's" interpreter
        self.present = {IMAGE}
        self.created: list[FakeContainer] = []
        self.live: dict[str, FakeContainer] = {}
        self.on_start: Any = None  # replaces running the runner (a container that dies at once)
        self.exit_code = 0
        self.logs = b""
        self.images = FakeImages(self)
        self.containers = FakeContainers(self)

    def ping(self) -> bool:
        return True


@pytest.fixture(scope="session")
def image_site(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A directory holding only cloudpickle: the fake image's site-packages."""
    site = tmp_path_factory.mktemp("fake-image-site")
    shutil.copytree(Path(cloudpickle.__file__).parent, site / "cloudpickle")
    return str(site)


@pytest.fixture
def fake_docker(image_site: str) -> Iterator[FakeDocker]:
    engine = FakeDocker(image_site)
    yield engine
    assert not engine.live, f"containers left behind: {list(engine.live)}"


@pytest.fixture(autouse=True)
def _no_image_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GRAFLOW_DOCKER_IMAGE", raising=False)
