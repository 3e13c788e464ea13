"""Entry point of graflow-checkpoint-s3: registers the ``s3`` checkpoint-store scheme.

Imported at every plugin discovery, so boto3 is imported inside the factory, not here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from graflow.hookspecs import hookimpl

if TYPE_CHECKING:
    from graflow.plugins.registry import Registrar
    from graflow_checkpoint_s3.store import S3CheckpointStore


def _s3_store(config: Mapping[str, Any]) -> S3CheckpointStore:
    from graflow_checkpoint_s3.store import S3CheckpointStore

    return S3CheckpointStore.from_config(config)


@hookimpl
def graflow_register_checkpoint_stores(register: Registrar) -> None:
    register("s3", _s3_store)
