"""The built-in direct handler, and the spec's delegating handler pattern, pass the handler suite."""

from __future__ import annotations

from typing import Any

import pytest

from graflow import TaskHandler
from graflow.core.handler import DirectTaskHandler
from graflow.testing import HandlerSuite


class TestDirectHandler(HandlerSuite):
    @pytest.fixture
    def handler(self) -> TaskHandler:
        return DirectTaskHandler()


class SetResultHandler(TaskHandler):
    """Records the result with set_result and returns nothing, like the spec's caching handler."""

    def execute_task(self, task: Any, context: Any) -> None:
        context.set_result(task.task_id, task.run())


class TestSetResultHandler(HandlerSuite):
    @pytest.fixture
    def handler(self) -> TaskHandler:
        return SetResultHandler()
