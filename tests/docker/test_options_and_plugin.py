"""Handler settings, their mapping onto ``containers.create``, and the ``docker`` handler name."""

from __future__ import annotations

import subprocess
import sys

import pytest

from graflow import WorkflowEngine
from graflow_docker import ContainerOptions, DockerTaskHandler
from graflow_docker._runner import BOOT_CODE
from graflow_docker.options import IO_MOUNT, MANAGED_LABEL, create_kwargs


def test_options_map_onto_create_arguments() -> None:
    options = ContainerOptions(
        image="img:1",
        environment={"API_KEY": "secret"},
        volumes={"/host/data": {"bind": "/data", "mode": "ro"}},
        network_mode="none",
        mem_limit="512m",
        cpus=0.5,
        cpu_period=100000,
        cpu_quota=50000,
        working_dir="/work",
        user="1000",
        labels={"team": "ml"},
        run_options={"cap_drop": ["ALL"], "read_only": True},
    )
    kwargs = create_kwargs(options, "/tmp/io", {MANAGED_LABEL: "1"})
    assert kwargs["image"] == "img:1"
    assert kwargs["command"] == ["python3", "-B", "-c", BOOT_CODE, IO_MOUNT]
    assert kwargs["environment"] == {"API_KEY": "secret"}
    assert kwargs["volumes"] == {
        "/host/data": {"bind": "/data", "mode": "ro"},
        "/tmp/io": {"bind": IO_MOUNT, "mode": "rw"},
    }
    assert kwargs["nano_cpus"] == 500_000_000
    assert (kwargs["cpu_period"], kwargs["cpu_quota"], kwargs["mem_limit"]) == (100000, 50000, "512m")
    assert kwargs["network_mode"] == "none" and kwargs["working_dir"] == "/work" and kwargs["user"] == "1000"
    assert kwargs["labels"] == {"team": "ml", MANAGED_LABEL: "1"}
    assert kwargs["cap_drop"] == ["ALL"] and kwargs["read_only"] is True
    assert "detach" not in kwargs and kwargs["auto_remove"] is False


def test_gpu_device_requests_pass_through() -> None:
    from docker.types import DeviceRequest

    gpus = [DeviceRequest(count=1, capabilities=[["gpu"]])]
    kwargs = create_kwargs(ContainerOptions(image="tensorflow/tensorflow:latest-gpu", device_requests=gpus), "/io", {})
    assert kwargs["device_requests"] == gpus


def test_volume_list_form_gets_the_io_mount_appended() -> None:
    kwargs = create_kwargs(ContainerOptions(image="i", volumes=["/a:/b:ro"]), "/tmp/io", {})
    assert kwargs["volumes"] == ["/a:/b:ro", f"/tmp/io:{IO_MOUNT}:rw"]


def test_run_options_may_not_take_over_the_protocol() -> None:
    with pytest.raises(ValueError, match=r"run_options may not set \['command'\]"):
        ContainerOptions(image="i", run_options={"command": ["sh"]})


@pytest.mark.parametrize(
    ("key", "option"),
    [("volumes", "volumes="), ("labels", "labels="), ("auto_remove", "auto_remove="), ("nano_cpus", "cpus=")],
)
def test_run_options_may_not_set_what_has_an_option_of_its_own(key: str, option: str) -> None:
    """They would be overwritten by the handler's own mounts and labels, silently."""
    with pytest.raises(
        ValueError, match=rf"run_options may not set \['{key}'\]: pass them as the handler's own options \({option}\)"
    ):
        ContainerOptions(image="i", run_options={key: {"x": 1}})


def test_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="timeout must be > 0"):
        DockerTaskHandler(image="i", timeout=0)


def test_missing_image_says_where_an_image_comes_from() -> None:
    with pytest.raises(ValueError, match=r"GRAFLOW_DOCKER_IMAGE.*scripts/build-test-image\.sh"):
        DockerTaskHandler()


def test_image_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAFLOW_DOCKER_IMAGE", "from-env:1")
    assert DockerTaskHandler().options.image == "from-env:1"


def test_docker_handler_name_comes_from_the_entry_point_with_config() -> None:
    engine = WorkflowEngine(config={"docker_image": "cfg:1", "docker_timeout": 30, "docker_mem_limit": "1g"})
    handler = engine.handler("docker")
    assert isinstance(handler, DockerTaskHandler)
    assert (handler.options.image, handler.options.timeout, handler.options.mem_limit) == ("cfg:1", 30, "1g")


def test_docker_handler_name_falls_back_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAFLOW_DOCKER_IMAGE", "env:2")
    handler = WorkflowEngine().handler("docker")
    assert isinstance(handler, DockerTaskHandler) and handler.options.image == "env:2"


def test_unknown_docker_setting_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown Docker handler settings \['docker_memory'\].*docker_mem_limit"):
        ContainerOptions.from_config({"docker_image": "i", "docker_memory": "1g"})


def test_plugin_discovery_does_not_import_docker() -> None:
    code = "import graflow_docker.plugin, sys; assert 'docker' not in sys.modules, 'docker imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
