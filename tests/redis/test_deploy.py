"""The deployment files of deploy/ use only settings the worker reads, and start the worker module."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from graflow.worker.main import build_parser

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"

# Everything the worker and graflow-redis read from the environment.
OPTION_ENV = {
    "GRAFLOW_WORKER_ID": "x",
    "REDIS_URL": "redis://x:1/0",
    "GRAFLOW_QUEUE": "q",
    "GRAFLOW_QUEUE_BACKEND": "b",
    "MAX_CONCURRENT_TASKS": "9",
    "GRACEFUL_SHUTDOWN_TIMEOUT": "9",
    "WORKER_TIMEOUT": "9",
    "MAX_DELIVERIES": "9",
    "GRAFLOW_LOG_LEVEL": "debug",
    "GRAFLOW_LOG_FORMAT": "json",
}
"""Each variable the worker's options read, with a value that differs from the default."""
KNOWN_ENV = {*OPTION_ENV, "REDIS_HOST", "REDIS_PORT", "REDIS_DB", "REDIS_PASSWORD", "GRAFLOW_SECRET_KEY"}
GENERIC_ENV = {"PYTHONUNBUFFERED", "PIP_NO_CACHE_DIR", "PIP_DISABLE_PIP_VERSION_CHECK"}


def test_every_documented_environment_variable_changes_an_option(monkeypatch: pytest.MonkeyPatch) -> None:
    baseline = vars(build_parser().parse_args([]))
    for name, value in OPTION_ENV.items():
        monkeypatch.setenv(name, value)
        assert vars(build_parser().parse_args([])) != baseline, name
        monkeypatch.delenv(name)


def test_kubernetes_and_compose_set_only_known_variables() -> None:
    yaml = pytest.importorskip("yaml")
    workers = yaml.safe_load((DEPLOY / "kubernetes" / "graflow-workers.yaml").read_text())
    (container,) = workers["spec"]["template"]["spec"]["containers"]
    names = {env["name"] for env in container["env"]}
    assert {"REDIS_HOST", "MAX_CONCURRENT_TASKS"} <= names <= KNOWN_ENV  # the spec's snippet, and more
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    assert set(compose["services"]["worker"]["environment"]) <= KNOWN_ENV
    grace = workers["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > float(next(e["value"] for e in container["env"] if e["name"] == "GRACEFUL_SHUTDOWN_TIMEOUT"))


def test_dockerfile_and_systemd_unit_start_the_worker_module() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert 'CMD ["python", "-m", "graflow.worker.main"]' in dockerfile
    assigned = set(re.findall(r"^(?:ENV\s+|\s+)([A-Z_]+)=", dockerfile, re.MULTILINE))
    assert {"REDIS_HOST", "MAX_CONCURRENT_TASKS"} <= assigned <= KNOWN_ENV | GENERIC_ENV
    unit = (DEPLOY / "systemd" / "graflow-worker@.service").read_text()
    (exec_start,) = re.findall(r"^ExecStart=(.*)$", unit, re.MULTILINE)
    assert " -m graflow.worker.main " in exec_start
    build_parser().parse_args(exec_start.split(" -m graflow.worker.main ")[1].split())
