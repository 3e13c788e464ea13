"""Conformance suite for queue backends: subclass it and override the ``backend`` fixture.

``backend`` returns an empty :class:`~graflow.queue.base.TaskQueue` of a fresh session::

    class TestRedisQueue(QueueBackendSuite):
        @pytest.fixture
        def backend(self, redis_url): return RedisTaskQueue(redis_url=redis_url, session_id=uuid.uuid4().hex)
"""

from __future__ import annotations

from typing import Any

import pytest

from graflow.queue.base import NO_DATA, TaskQueue, TaskSpec


class QueueBackendSuite:
    """FIFO order, non-blocking get, pending without removing, clear, length, iteration data kept."""

    @pytest.fixture
    def backend(self) -> TaskQueue:
        raise NotImplementedError("override the `backend` fixture to return an empty TaskQueue")

    def test_empty_queue_gets_none_without_blocking(self, backend: TaskQueue) -> None:
        assert backend.get() is None
        assert len(backend) == 0
        assert backend.pending() == []

    def test_put_then_get_is_first_in_first_out(self, backend: TaskQueue) -> None:
        for name in ("a", "b", "c"):
            backend.put(TaskSpec(name))
        assert [backend.get().task_id for _ in range(3)] == ["a", "b", "c"]  # type: ignore[union-attr]
        assert backend.get() is None

    def test_put_many_keeps_order_after_earlier_puts(self, backend: TaskQueue) -> None:
        backend.put(TaskSpec("first"))
        backend.put_many([TaskSpec("x"), TaskSpec("y")])
        backend.put_many([])
        assert [s.task_id for s in backend.pending()] == ["first", "x", "y"]

    def test_pending_does_not_remove(self, backend: TaskQueue) -> None:
        backend.put_many([TaskSpec("a"), TaskSpec("b")])
        assert [s.task_id for s in backend.pending()] == ["a", "b"]
        assert len(backend) == 2
        assert backend.get().task_id == "a"  # type: ignore[union-attr]
        assert len(backend) == 1

    def test_clear_drops_everything(self, backend: TaskQueue) -> None:
        backend.put_many([TaskSpec("a"), TaskSpec("b")])
        backend.clear()
        assert len(backend) == 0
        assert backend.get() is None

    @pytest.mark.parametrize("data", [None, 0, "text", (1, "two"), {"k": [1, 2]}, {3, 4}], ids=repr)
    def test_iteration_data_keeps_value_and_type(self, backend: TaskQueue, data: Any) -> None:
        backend.put(TaskSpec("loop", data))
        spec = backend.get()
        assert spec is not None
        assert spec.data == data
        assert type(spec.data) is type(data)

    def test_spec_without_data_stays_without_data(self, backend: TaskQueue) -> None:
        backend.put(TaskSpec("plain"))
        spec = backend.get()
        assert spec is not None
        assert spec.data is NO_DATA

    def test_close_is_safe(self, backend: TaskQueue) -> None:
        backend.put(TaskSpec("a"))
        backend.close()
