"""The built-in memory queue and channel pass the backend conformance suites that plugins run too."""

from __future__ import annotations

import pytest

from graflow.channels.base import Channel
from graflow.channels.memory import MemoryChannel
from graflow.queue.base import TaskQueue
from graflow.queue.memory import MemoryTaskQueue
from graflow.testing import ChannelBackendSuite, QueueBackendSuite


class TestMemoryQueue(QueueBackendSuite):
    @pytest.fixture
    def backend(self) -> TaskQueue:
        return MemoryTaskQueue()


class TestMemoryChannel(ChannelBackendSuite):
    @pytest.fixture
    def backend(self) -> Channel:
        return MemoryChannel("session")
