"""Errors of the Docker handler: each names its cause and what to do, before task code runs when it can."""

from __future__ import annotations

from graflow.exceptions import GraflowError

BUILD_HINT = "bash scripts/build-test-image.sh"


class DockerHandlerError(GraflowError):
    """Root of the errors raised by graflow-docker."""


class DockerUnavailableError(DockerHandlerError, ConnectionError):
    """No Docker daemon answers (``docker.from_env()`` failed, or the connection dropped)."""


class DockerImageNotFoundError(DockerHandlerError, LookupError):
    """The image is not in the local Docker engine; nothing is pulled automatically."""

    def __init__(self, image: str) -> None:
        self.image = image
        super().__init__(
            f"Docker image {image!r} is not available in the local Docker engine. Build the Graflow test "
            f"image with `{BUILD_HINT}` (it prints the image name), or `docker pull {image}` when a "
            "registry is reachable. graflow-docker never pulls on its own."
        )


class DockerImageMismatchError(DockerHandlerError, RuntimeError):
    """The image's Python or cloudpickle cannot load what this host pickles.

    ``component`` is ``"python"`` or ``"cloudpickle"``; ``image_version`` is ``None`` when the image
    lacks cloudpickle altogether.
    """

    def __init__(self, image: str, component: str, host_version: str, image_version: str | None) -> None:
        self.image = image
        self.component = component
        self.host_version = host_version
        self.image_version = image_version
        if component == "python":
            detail = (
                f"runs Python {image_version} but this host runs Python {host_version}; pickled task code "
                f"only loads on the same major.minor. Use an image with Python {host_version}"
            )
        elif image_version is None:
            detail = f"has no cloudpickle; install cloudpickle=={host_version} in the image (the host's version)"
        else:
            detail = (
                f"has cloudpickle {image_version} but this host has cloudpickle {host_version}; install "
                f"cloudpickle=={host_version} in the image"
            )
        super().__init__(f"Docker image {image!r} {detail}. `{BUILD_HINT}` builds a matching image.")


class ContainerStartError(DockerHandlerError, RuntimeError):
    """The container could not start or exited without reporting (no Python, a crash, a kill)."""

    def __init__(self, message: str, image: str, exit_code: int | None = None, logs: str = "") -> None:
        self.image = image
        self.exit_code = exit_code
        self.logs = logs
        super().__init__(message)


class ContainerOOMError(DockerHandlerError, MemoryError):
    """The kernel killed the task's container for exceeding its memory limit (OOM)."""

    def __init__(self, task_id: str, image: str, mem_limit: str | int | None, certain: bool = True) -> None:
        self.task_id = task_id
        self.image = image
        self.mem_limit = mem_limit
        how = "was killed by the kernel OOM killer" if certain else "was SIGKILLed, most likely by the OOM killer"
        super().__init__(
            f"task {task_id!r} ran out of memory (OOM): its container {how} for exceeding "
            f"mem_limit={mem_limit!r} (image {image!r}). Raise mem_limit or use less memory."
        )


class TaskLoadError(DockerHandlerError, ImportError):
    """The task's function or arguments could not be loaded inside the image (a module it lacks)."""

    def __init__(self, task_id: str, image: str, cause: str) -> None:
        self.task_id = task_id
        self.image = image
        super().__init__(
            f"task {task_id!r} could not be loaded inside image {image!r}: {cause}. Packages the task "
            "uses must be installed in the image; modules outside site-packages (your own code) are "
            "shipped by value, and by_value_modules=[...] ships a pure-Python package too."
        )
