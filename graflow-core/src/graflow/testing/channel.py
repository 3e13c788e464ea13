"""Conformance suite for channel backends: subclass it and override the ``backend`` fixture.

``backend`` returns an empty :class:`~graflow.channels.base.Channel` of a fresh session. Override
``same_channel`` too when a second handle on the same data can be opened (another connection, as
another process would), so the concurrency tests write through several handles::

    class TestRedisChannel(ChannelBackendSuite):
        @pytest.fixture
        def backend(self, redis_url): return RedisChannel(uuid.uuid4().hex, redis_url=redis_url)
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import attrs
import pytest

from graflow.channels.base import Channel
from graflow.channels.views import NamespacedChannel

WRITERS = 4


@attrs.frozen
class _Point:
    x: int
    y: int


class ChannelBackendSuite:
    """Every operation of the Channel contract, types kept, atomic updates under concurrent writers."""

    @pytest.fixture
    def backend(self) -> Channel:
        raise NotImplementedError("override the `backend` fixture to return an empty Channel")

    @pytest.fixture
    def same_channel(self, backend: Channel) -> Callable[[], Channel]:
        """Opens another handle on ``backend``'s data; by default the same object."""
        return lambda: backend

    def test_get_missing_returns_default(self, backend: Channel) -> None:
        assert backend.get("missing") is None
        assert backend.get("missing", 42) == 42
        assert "missing" not in backend

    @pytest.mark.parametrize(
        "value",
        [
            0,
            -7,
            2**70,
            1.5,
            True,
            None,
            "text",
            b"bytes",
            (1, "two"),
            [1, [2]],
            {"a": {"b": 1}},
            {1, 2},
            _Point(1, 2),
        ],
        ids=repr,
    )
    def test_set_get_keeps_value_and_type(self, backend: Channel, value: Any) -> None:
        backend.set("k", value)
        got = backend.get("k")
        assert got == value
        assert type(got) is type(value)
        assert "k" in backend

    def test_set_replaces(self, backend: Channel) -> None:
        backend.set("k", 1)
        backend.set("k", "two")
        assert backend.get("k") == "two"

    def test_delete_says_whether_the_key_existed(self, backend: Channel) -> None:
        backend.set("k", 1)
        assert backend.delete("k") is True
        assert backend.delete("k") is False
        assert "k" not in backend

    def test_keys_and_items(self, backend: Channel) -> None:
        backend.set("a", 1)
        backend.set("b", [2])
        assert sorted(backend.keys()) == ["a", "b"]
        assert backend.items() == {"a": 1, "b": [2]}

    def test_clear_removes_every_key(self, backend: Channel) -> None:
        backend.set("a", 1)
        backend.set("b", 2)
        backend.clear()
        assert backend.keys() == []
        assert backend.get("a") is None

    def test_update_applies_function_to_current_or_default(self, backend: Channel) -> None:
        assert backend.update("n", lambda v: v + 1, 10) == 11
        assert backend.update("n", lambda v: v * 2, 0) == 22
        assert backend.get("n") == 22

    def test_update_that_raises_changes_nothing(self, backend: Channel) -> None:
        backend.set("n", 1)

        def boom(value: Any) -> Any:
            raise ValueError("no")

        with pytest.raises(ValueError):
            backend.update("n", boom)
        assert backend.get("n") == 1

    def test_increment_counts_from_zero(self, backend: Channel) -> None:
        assert backend.increment("c") == 1
        assert backend.increment("c", 5) == 6
        assert backend.get("c") == 6

    def test_increment_by_float(self, backend: Channel) -> None:
        backend.increment("f", 1)
        assert backend.increment("f", 0.5) == pytest.approx(1.5)
        assert backend.get("f") == pytest.approx(1.5)

    def test_append_builds_a_list(self, backend: Channel) -> None:
        assert backend.append("l", 1) == [1]
        assert backend.append("l", (2, 3)) == [1, (2, 3)]
        assert backend.get("l") == [1, (2, 3)]

    def test_namespaces_do_not_see_each_other(self, backend: Channel) -> None:
        a, b = NamespacedChannel(backend, "a"), NamespacedChannel(backend, "b")
        a.set("k", 1)
        b.set("k", 2)
        assert (a.get("k"), b.get("k")) == (1, 2)
        assert a.keys() == ["k"]
        assert a.increment("n") == 1
        assert "n" not in b

    def _concurrently(self, same_channel: Callable[[], Channel], work: Callable[[Channel], object]) -> None:
        handles = [same_channel() for _ in range(WRITERS)]
        start = threading.Barrier(WRITERS)
        errors: list[BaseException] = []

        def run(channel: Channel) -> None:
            try:
                start.wait()
                work(channel)
            except BaseException as exc:  # reported by the test, not lost in a thread
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(h,)) for h in handles]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []

    def test_concurrent_increments_are_not_lost(self, backend: Channel, same_channel: Callable[[], Channel]) -> None:
        self._concurrently(same_channel, lambda ch: ch.increment("counter"))
        assert backend.get("counter") == WRITERS

    def test_many_concurrent_increments_add_up(self, backend: Channel, same_channel: Callable[[], Channel]) -> None:
        def work(channel: Channel) -> None:
            for _ in range(50):
                channel.increment("counter")

        self._concurrently(same_channel, work)
        assert backend.get("counter") == WRITERS * 50

    def test_concurrent_appends_are_not_lost(self, backend: Channel, same_channel: Callable[[], Channel]) -> None:
        def work(channel: Channel) -> None:
            for i in range(10):
                channel.append("log", i)

        self._concurrently(same_channel, work)
        assert sorted(backend.get("log")) == sorted(list(range(10)) * WRITERS)

    def test_concurrent_updates_are_not_lost(self, backend: Channel, same_channel: Callable[[], Channel]) -> None:
        def work(channel: Channel) -> None:
            for _ in range(10):
                channel.update("total", lambda v: v + 2, 0)

        self._concurrently(same_channel, work)
        assert backend.get("total") == WRITERS * 20
