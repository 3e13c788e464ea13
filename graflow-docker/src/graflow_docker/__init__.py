"""graflow-docker: run Graflow tasks inside Docker containers (``@task(handler="docker")``)."""

from graflow_docker.errors import (
    ContainerOOMError,
    ContainerStartError,
    DockerHandlerError,
    DockerImageMismatchError,
    DockerImageNotFoundError,
    DockerUnavailableError,
    TaskLoadError,
)
from graflow_docker.handler import DockerTaskHandler
from graflow_docker.options import ContainerOptions

__all__ = [
    "ContainerOOMError",
    "ContainerOptions",
    "ContainerStartError",
    "DockerHandlerError",
    "DockerImageMismatchError",
    "DockerImageNotFoundError",
    "DockerTaskHandler",
    "DockerUnavailableError",
    "TaskLoadError",
]
