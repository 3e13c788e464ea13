"""graflow-checkpoint-s3: ``s3://bucket/prefix`` checkpoints for Graflow, through boto3.

The entry point (``graflow_checkpoint_s3.plugin``) registers the ``s3`` checkpoint-store scheme.
boto3 is imported only when an ``s3://`` path is used, so plugin discovery stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from graflow_checkpoint_s3.store import S3CheckpointStore as S3CheckpointStore

__all__ = ["S3CheckpointStore", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "S3CheckpointStore":  # lazy: importing the store imports boto3
        from graflow_checkpoint_s3.store import S3CheckpointStore

        return S3CheckpointStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
