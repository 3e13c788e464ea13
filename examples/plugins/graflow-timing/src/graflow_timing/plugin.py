"""The entry-point module: Graflow imports it and registers its hook implementations."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from graflow import TaskHandler, hookimpl

DURATIONS: dict[str, float] = {}


class TimingHandler(TaskHandler):
    """Runs the task here and wraps its result with how long it took."""

    def execute_task(self, task: Any, context: Any) -> Any:
        started = time.perf_counter()
        result = task.run()
        return {"result": result, "seconds": time.perf_counter() - started}


def _factory(config: Mapping[str, Any]) -> TimingHandler:
    return TimingHandler()


@hookimpl
def graflow_register_handlers(register: Any) -> None:
    register("timing", _factory)


@hookimpl
def graflow_task_succeeded(task_id: str, duration_s: float) -> None:  # a subset of the hook's arguments
    DURATIONS[task_id] = duration_s
