"""The S3 store passes the checkpoint store suite against moto's standalone server."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from graflow.checkpoint.store import CheckpointStore
from graflow.testing import CheckpointStoreSuite
from graflow_checkpoint_s3 import S3CheckpointStore

pytestmark = pytest.mark.s3


class TestS3Store(CheckpointStoreSuite):
    @pytest.fixture
    def store(self, s3_config: dict[str, Any]) -> CheckpointStore:
        return S3CheckpointStore.from_config(s3_config)

    @pytest.fixture
    def location(self, bucket: str) -> str:
        return f"s3://{bucket}/runs/{uuid.uuid4().hex[:8]}"

    @pytest.fixture
    def store_config(self, s3_config: dict[str, Any]) -> dict[str, Any]:
        return s3_config


class TestS3StoreAtBucketRoot(CheckpointStoreSuite):
    @pytest.fixture
    def store(self, s3_config: dict[str, Any]) -> CheckpointStore:
        return S3CheckpointStore.from_config(s3_config)

    @pytest.fixture
    def location(self, bucket: str) -> str:
        return f"s3://{bucket}"

    @pytest.fixture
    def store_config(self, s3_config: dict[str, Any]) -> dict[str, Any]:
        return s3_config
