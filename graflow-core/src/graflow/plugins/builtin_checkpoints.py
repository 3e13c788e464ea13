"""The built-in checkpoint store: local files, for plain paths and ``file://`` URLs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from graflow.checkpoint.local import LocalCheckpointStore
from graflow.hookspecs import hookimpl
from graflow.plugins.registry import Registrar


def _local(config: Mapping[str, Any]) -> LocalCheckpointStore:
    return LocalCheckpointStore()


@hookimpl
def graflow_register_checkpoint_stores(register: Registrar) -> None:
    register("file", _local)
