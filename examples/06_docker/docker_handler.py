"""The Docker handler (spec section 4, "Built-in Docker Handler"): tasks in containers, in one workflow.

Needs a Docker daemon and an image with the host's Python and cloudpickle: `bash scripts/build-test-image.sh`
builds one and prints its name. Run:

    GRAFLOW_DOCKER_IMAGE=<that name> python examples/06_docker/docker_handler.py
"""

import os
import tempfile
from pathlib import Path

from graflow import TaskExecutionContext, WorkflowEngine, task, workflow
from graflow_docker import DockerTaskHandler

IMAGE = os.environ["GRAFLOW_DOCKER_IMAGE"]


# Basic usage: the plugin's "docker" handler takes its image from GRAFLOW_DOCKER_IMAGE.
@task(handler="docker")
def isolated_task():
    """Runs in Docker container with complete isolation."""
    import socket
    import sys

    return {"python": sys.version.split()[0], "hostname": socket.gethostname()}


# Environment variables and volume mounts, on a handler registered under its own name.
@task(handler="configured")
def read_and_write() -> str:
    text = Path("/container/data/input.txt").read_text()
    Path("/output/summary.txt").write_text(f"{os.environ['STAGE']}: {len(text.split())} words")
    return text


# Network configuration and resource limits on a third handler.
@task(handler="offline")
def offline_probe() -> list[str]:
    return sorted(os.listdir("/sys/class/net"))  # only the loopback interface with network_mode="none"


@task(inject_context=True, handler="docker")
def count_words(context: TaskExecutionContext, read_and_write: str) -> int:
    words = len(read_and_write.split())
    context.get_channel().set("words", words)  # written inside, lands in the host's channel
    return words


@task(inject_context=True)
def report(context: TaskExecutionContext, isolated_task: dict, count_words: int, offline_probe: list) -> str:
    """A direct task: runs on the host, mixed freely with containerized ones."""
    where = f"python {isolated_task['python']} in {isolated_task['hostname']}"
    return f"{where}: {count_words} words; {offline_probe}"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data, output = Path(tmp, "data"), Path(tmp, "output")
        data.mkdir()
        output.mkdir()
        (data / "input.txt").write_text("graflow runs this task in a container")

        engine = WorkflowEngine()  # "docker" comes from the graflow-docker plugin
        engine.register_handler(
            "configured",
            DockerTaskHandler(
                image=IMAGE,
                environment={"STAGE": "prod", "DEBUG": "1"},
                volumes={
                    str(data): {"bind": "/container/data", "mode": "ro"},
                    str(output): {"bind": "/output", "mode": "rw"},
                },
            ),
        )
        engine.register_handler(
            "offline",
            DockerTaskHandler(image=IMAGE, network_mode="none", mem_limit="128m", cpu_period=100000, cpu_quota=50000),
        )

        with workflow("docker_demo") as wf:
            (isolated_task | read_and_write | offline_probe) >> count_words >> report
        result, ctx = wf.execute(engine=engine, ret_context=True)

        print(result)
        assert ctx.get_result("isolated_task")["hostname"] != os.uname().nodename
        assert ctx.channel.get("words") == 7
        assert (output / "summary.txt").read_text() == "prod: 7 words"
        assert ctx.get_result("offline_probe") == ["lo"]
        assert result.endswith("7 words; ['lo']")


if __name__ == "__main__":
    main()
