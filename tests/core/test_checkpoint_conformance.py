"""The built-in local store passes the checkpoint store suite, with plain paths and file:// URLs."""

from __future__ import annotations

from pathlib import Path

import pytest

from graflow.checkpoint import LocalCheckpointStore
from graflow.checkpoint.store import CheckpointStore
from graflow.testing import CheckpointStoreSuite


class TestLocalStore(CheckpointStoreSuite):
    @pytest.fixture
    def store(self) -> CheckpointStore:
        return LocalCheckpointStore()

    @pytest.fixture
    def location(self, tmp_path: Path) -> str:
        return str(tmp_path / "checkpoints")


class TestLocalStoreFileUrls(CheckpointStoreSuite):
    @pytest.fixture
    def store(self) -> CheckpointStore:
        return LocalCheckpointStore()

    @pytest.fixture
    def location(self, tmp_path: Path) -> str:
        return f"file://{tmp_path}/checkpoints"
