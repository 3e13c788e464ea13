"""Conformance suite for result-cache stores: subclass it and override the ``store`` fixture.

``store`` returns an empty :class:`~graflow.cache.CacheStore`. Override ``advance`` when the store's
clock can be moved (``advance(seconds)``), so expiry is tested without sleeping; otherwise the
expiry test is skipped and the store should test its TTL its own way (graflow-redis reads ``PTTL``).
Override ``same_store`` when a second handle on the same entries can be opened (as another process
would), so the concurrent-writer test goes through several handles::

    class TestRedisCacheStore(CacheStoreSuite):
        @pytest.fixture
        def store(self, redis_url): return RedisCacheStore.from_config({"redis_url": redis_url})
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from graflow.cache.base import CacheKey, CacheStore

WRITERS = 4


def _key(task_id: str, n: int) -> CacheKey:
    return CacheKey(task_id, f"{n:064x}")


class CacheStoreSuite:
    """The CacheStore contract: misses are ``None``, entries are bytes, per-task clearing, expiry."""

    @pytest.fixture
    def store(self) -> CacheStore:
        raise NotImplementedError("override the `store` fixture to return an empty CacheStore")

    @pytest.fixture
    def advance(self) -> Callable[[float], None]:
        pytest.skip("this store's clock cannot be moved; test its expiry another way")

    @pytest.fixture
    def same_store(self, store: CacheStore) -> Callable[[], CacheStore]:
        return lambda: store

    def test_a_missing_entry_is_none(self, store: CacheStore) -> None:
        assert store.get(_key("t", 1)) is None

    def test_entries_round_trip_as_bytes_and_an_empty_entry_is_not_a_miss(self, store: CacheStore) -> None:
        store.set(_key("t", 1), b"", None)
        store.set(_key("t", 2), bytes(range(256)) * 10, None)
        assert store.get(_key("t", 1)) == b""
        assert store.get(_key("t", 2)) == bytes(range(256)) * 10

    def test_set_replaces_an_entry(self, store: CacheStore) -> None:
        store.set(_key("t", 1), b"old", None)
        store.set(_key("t", 1), b"new", None)
        assert store.get(_key("t", 1)) == b"new"

    def test_delete_says_whether_there_was_an_entry(self, store: CacheStore) -> None:
        store.set(_key("t", 1), b"v", None)
        assert store.delete(_key("t", 1)) is True
        assert store.delete(_key("t", 1)) is False
        assert store.get(_key("t", 1)) is None

    @pytest.mark.parametrize("odd", ["a:b", "a/../b", "a*", "[x]", "é ü", "%3A", "a" * 300])
    def test_clear_by_task_touches_only_that_task_even_with_odd_ids(self, store: CacheStore, odd: str) -> None:
        prefix_of_odd = odd[:1]
        store.set(_key(odd, 1), b"1", None)
        store.set(_key(odd, 2), b"2", None)
        store.set(_key(prefix_of_odd, 1), b"other", None)
        store.set(_key(f"{odd}:x", 1), b"longer", None)
        assert store.clear(odd) == 2
        assert store.get(_key(odd, 1)) is None and store.get(_key(odd, 2)) is None
        assert store.get(_key(prefix_of_odd, 1)) == b"other"
        assert store.get(_key(f"{odd}:x", 1)) == b"longer"

    def test_clear_everything(self, store: CacheStore) -> None:
        for n in range(5):
            store.set(_key(f"t{n}", n), b"v", None)
        assert store.clear() == 5
        assert all(store.get(_key(f"t{n}", n)) is None for n in range(5))
        assert store.clear() == 0

    def test_entries_expire_after_their_ttl(self, store: CacheStore, advance: Callable[[float], None]) -> None:
        store.set(_key("t", 1), b"short", 10)
        store.set(_key("t", 2), b"forever", None)
        advance(9.5)
        assert store.get(_key("t", 1)) == b"short"
        advance(1)
        assert store.get(_key("t", 1)) is None
        assert store.get(_key("t", 2)) == b"forever"

    def test_concurrent_writers_of_one_key_leave_one_whole_entry(
        self, store: CacheStore, same_store: Callable[[], CacheStore]
    ) -> None:
        values = [bytes([n]) * 100_000 for n in range(WRITERS)]
        barrier = threading.Barrier(WRITERS)

        def write(value: bytes) -> None:
            handle = same_store()
            barrier.wait()
            for _ in range(5):
                handle.set(_key("t", 1), value, None)

        threads = [threading.Thread(target=write, args=(v,)) for v in values]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert store.get(_key("t", 1)) in values
