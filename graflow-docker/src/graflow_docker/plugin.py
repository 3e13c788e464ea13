"""Entry point of graflow-docker: the ``docker`` task handler.

Imported at every plugin discovery, so docker-py is imported only when a handler is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from graflow.hookspecs import hookimpl
from graflow.plugins.registry import Registrar

if TYPE_CHECKING:
    from graflow_docker.handler import DockerTaskHandler


def _docker(config: Mapping[str, Any]) -> DockerTaskHandler:
    from graflow_docker.handler import DockerTaskHandler

    return DockerTaskHandler.from_config(config)


@hookimpl
def graflow_register_handlers(register: Registrar) -> None:
    register("docker", _docker)


@hookimpl
def graflow_run_started() -> None:
    # Runs in the thread that called execute (normally the main one), so Ctrl-C can remove the
    # containers of a parallel group even when its handler was first built in a worker thread.
    from graflow_docker._cleanup import install_interrupt_hook

    install_interrupt_hook()
