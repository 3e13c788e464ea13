"""Built-in handlers, registered through the same hook as any plugin's."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from graflow.core.handler import DirectTaskHandler
from graflow.hookspecs import hookimpl
from graflow.plugins.registry import Registrar


def _direct(config: Mapping[str, Any]) -> DirectTaskHandler:
    return DirectTaskHandler()


@hookimpl
def graflow_register_handlers(register: Registrar) -> None:
    register("direct", _direct)
