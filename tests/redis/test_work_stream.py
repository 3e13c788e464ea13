"""The work stream as a TaskWorker sees it: deliveries, completion, release, reclaim and dead letters.

Consumers here are plain names driven by hand, so every step is deterministic; real worker processes
dying are in tests/integration/test_redis_resilience.py.
"""

from __future__ import annotations

import time

import pytest
import redis

from graflow.worker import QueueDepth, WorkItem, WorkSource
from graflow_redis import RedisTaskQueue

pytestmark = pytest.mark.redis  # a private redis-server (see conftest.py)

RESULTS = "graflow:s:test:g:grp:tok:results"
TIMEOUT = 0.2  # worker_timeout: consumers silent this long without a heartbeat are dead


def let_time_out() -> None:
    time.sleep(TIMEOUT + 0.05)


@pytest.fixture
def queue(redis_url: str) -> RedisTaskQueue:
    q = RedisTaskQueue(redis_url=redis_url, worker_timeout=TIMEOUT, max_deliveries=3)
    q.ensure_group()
    return q


def publish(queue: RedisTaskQueue, count: int, results: str = RESULTS) -> list[str]:
    return queue.publish(
        [{"t": f"t{i}", "c": 1, "p": b"payload", "r": results, "s": "test", "n": 0} for i in range(count)]
    )


def results(client: redis.Redis, key: str = RESULTS) -> list[dict[bytes, bytes]]:
    return [fields for _, fields in client.xrange(key) if b"t" in fields]


def test_queue_is_a_work_source(queue: RedisTaskQueue) -> None:
    assert isinstance(queue, WorkSource)


def test_fetch_never_takes_more_than_asked(queue: RedisTaskQueue, redis_client: redis.Redis) -> None:
    redis_client.xadd(RESULTS, {"open": "1"})
    publish(queue, 5)
    first = queue.fetch("c1", 2, 0.01)
    assert [i.task_id for i in first] == ["t0", "t1"]
    assert [i.task_id for i in queue.fetch("c2", 10, 0.01)] == ["t2", "t3", "t4"]
    assert queue.fetch("c1", 3, 0.01) == []


@pytest.mark.parametrize("protocol", [2, 3])
def test_fetch_reads_entries_over_either_protocol(redis_url: str, redis_client: redis.Redis, protocol: int) -> None:
    # A user's client decides RESP2 or RESP3; slot reads parse raw replies of both.
    client = redis.Redis.from_url(redis_url, protocol=protocol)
    q = RedisTaskQueue(redis_client=client, worker_timeout=TIMEOUT)
    q.ensure_group()
    redis_client.xadd(RESULTS, {"open": "1"})
    publish(q, 2)
    items = q.fetch("c1", 5, 0.01)
    assert [(i.task_id, i.cycle, i.payload, i.route) for i in items] == [
        ("t0", 1, b"payload", RESULTS.encode()),
        ("t1", 1, b"payload", RESULTS.encode()),
    ]
    assert q.fetch("c1", 5, 0.01) == []


def test_complete_posts_outcomes_and_removes_entries(queue: RedisTaskQueue, redis_client: redis.Redis) -> None:
    redis_client.xadd(RESULTS, {"open": "1"})
    publish(queue, 2)
    items = queue.fetch("c1", 2, 0.01)
    queue.complete("c1", [(items[0], b"out0")])
    queue.fetch("c1", 1, 0.01, done=[(items[1], b"out1")])  # completed in the fetch's round trip
    assert [(f[b"t"], f[b"o"]) for f in results(redis_client)] == [(b"t0", b"out0"), (b"t1", b"out1")]
    assert redis_client.xlen(queue.keys.tasks) == 0
    assert redis_client.xpending(queue.keys.tasks, "graflow-workers")["pending"] == 0


def test_completion_in_a_fetch_survives_flushed_scripts(queue: RedisTaskQueue, redis_client: redis.Redis) -> None:
    # After a Redis restart the server has forgotten our scripts: the fetch's EVALSHA gets NOSCRIPT.
    redis_client.xadd(RESULTS, {"open": "1"})
    publish(queue, 2)
    first, _ = queue.fetch("c1", 2, 0.01)
    redis_client.script_flush()
    assert queue.fetch("c1", 1, 0.01, done=[(first, b"out0")]) == []
    assert [(f[b"t"], f[b"o"]) for f in results(redis_client)] == [(b"t0", b"out0")]


def test_outcomes_for_a_finished_group_are_dropped(queue: RedisTaskQueue, redis_client: redis.Redis) -> None:
    redis_client.xadd(RESULTS, {"open": "1"})
    publish(queue, 1)
    (item,) = queue.fetch("c1", 1, 0.01)
    redis_client.delete(RESULTS)  # the group ended (or its submitter died) meanwhile
    queue.complete("c1", [(item, b"late")])
    assert not redis_client.exists(RESULTS)


def test_tasks_of_a_vanished_group_are_skipped(queue: RedisTaskQueue, redis_client: redis.Redis) -> None:
    redis_client.xadd(RESULTS, {"open": "1"})
    publish(queue, 1, results="graflow:s:gone:g:grp:tok:results")
    publish(queue, 1)
    assert [i.task_id for i in queue.fetch("c1", 2, 0.01)] == ["t0"]
    assert redis_client.xlen(queue.keys.tasks) == 1  # the orphan was acknowledged and deleted


def test_release_gives_work_back_to_any_consumer(queue: RedisTaskQueue, redis_client: redis.Redis) -> None:
    redis_client.xadd(RESULTS, {"open": "1"})
    publish(queue, 2)
    items = queue.fetch("stopping", 2, 0.01)
    queue.release("stopping", items)
    assert [i.task_id for i in queue.fetch("other", 5, 0.01)] == ["t0", "t1"]
    assert redis_client.xpending(queue.keys.tasks, "graflow-workers")["consumers"] == [{"name": b"other", "pending": 2}]


def test_release_lost_gives_back_old_deliveries_the_consumer_does_not_know(
    queue: RedisTaskQueue, redis_client: redis.Redis
) -> None:
    """A delivery whose reply was lost is pending for a live consumer that never saw it."""
    redis_client.xadd(RESULTS, {"open": "1"})
    publish(queue, 3)
    held, lost, fresh = queue.fetch("w1", 3, 0.01)
    assert queue.release_lost("w1", {held.item_id, lost.item_id, fresh.item_id}, 0.0) == 0
    assert queue.release_lost("w1", {held.item_id}, 30.0) == 0  # too recent: its reply may be on its way
    time.sleep(0.05)
    assert queue.release_lost("w1", {held.item_id}, 0.02) == 2
    assert sorted(i.task_id for i in queue.fetch("w2", 5, 0.01)) == ["t1", "t2"]
    pending = redis_client.xpending(queue.keys.tasks, "graflow-workers")["consumers"]
    assert sorted((c["name"], c["pending"]) for c in pending) == [(b"w1", 1), (b"w2", 2)]


def test_heartbeat_lists_live_workers_until_it_expires(queue: RedisTaskQueue) -> None:
    queue.heartbeat("w1@a", {"worker_id": "w1", "running": ["t3"]})
    assert queue.workers() == {"w1@a": {"worker_id": "w1", "running": ["t3"]}}
    ttl = queue.client.pttl(queue.keys.heartbeat("w1@a"))
    assert 0 < ttl <= TIMEOUT * 1000
    queue.leave("w1@a")
    assert queue.workers() == {}


def test_reclaim_requeues_work_of_a_dead_worker_only(queue: RedisTaskQueue, redis_client: redis.Redis) -> None:
    redis_client.xadd(RESULTS, {"open": "1"})
    publish(queue, 3)
    queue.heartbeat("alive@1", {})
    queue.fetch("alive@1", 1, 0.01)
    queue.fetch("dead@2", 2, 0.01)  # never heartbeats
    assert queue.reclaim() == 0  # it read moments ago: not dead yet
    queue.heartbeat("alive@1", {})
    let_time_out()
    queue.heartbeat("alive@1", {})
    assert queue.reclaim() == 2
    again = queue.fetch("alive@1", 5, 0.01)
    assert sorted(i.task_id for i in again) == ["t1", "t2"]
    counts = {f[b"t"]: int(f[b"n"]) for _, f in redis_client.xrange(queue.keys.tasks)}
    assert counts == {b"t0": 0, b"t1": 1, b"t2": 1}  # one death each for the reclaimed ones
    consumers = {c["name"] for c in redis_client.xinfo_consumers(queue.keys.tasks, "graflow-workers")}
    assert b"dead@2" not in consumers


def test_reclaim_waits_for_the_heartbeat_to_expire(queue: RedisTaskQueue, redis_client: redis.Redis) -> None:
    redis_client.xadd(RESULTS, {"open": "1"})
    publish(queue, 1)
    queue.heartbeat("slow@1", {})
    queue.fetch("slow@1", 1, 0.01)
    let_time_out()
    queue.heartbeat("slow@1", {})  # alive: a long task keeps its consumer silent, not dead
    assert queue.reclaim() == 0
    let_time_out()  # the heartbeat key expires
    assert queue.reclaim() == 1


def test_task_that_kills_its_workers_is_dead_lettered(queue: RedisTaskQueue, redis_client: redis.Redis) -> None:
    redis_client.xadd(RESULTS, {"open": "1"})
    publish(queue, 1)
    for attempt in range(3):  # max_deliveries=3
        (item,) = queue.fetch(f"victim@{attempt}", 1, 0.01)
        assert item.task_id == "t0"
        let_time_out()
        assert queue.reclaim() == 1
    assert queue.fetch("next@1", 1, 0.01) == []
    (dead,) = queue.dead_letters()
    assert (dead["t"], dead["n"], dead["w"]) == ("t0", "3", "victim@2")
    (posted,) = results(redis_client)
    assert (posted[b"t"], posted[b"dl"], posted[b"w"]) == (b"t0", b"3", b"victim@2")
    assert redis_client.ttl(queue.keys.dead) > 0


def test_fetch_recreates_a_stream_that_vanished(queue: RedisTaskQueue, redis_client: redis.Redis) -> None:
    redis_client.xadd(RESULTS, {"open": "1"})
    redis_client.delete(queue.keys.tasks)  # Redis restarted empty, or the key expired
    assert queue.fetch("c1", 1, 0.01) == []
    publish(queue, 1)
    assert [i.task_id for i in queue.fetch("c1", 1, 0.01)] == ["t0"]


def test_malformed_entries_are_dropped_not_delivered(queue: RedisTaskQueue, redis_client: redis.Redis) -> None:
    redis_client.xadd(queue.keys.tasks, {"garbage": "1"})
    assert queue.fetch("c1", 1, 0.01) == []
    assert redis_client.xlen(queue.keys.tasks) == 0


def test_work_item_carries_task_identity_without_the_payload_loaded(queue: RedisTaskQueue) -> None:
    queue.client.xadd(RESULTS, {"open": "1"})
    (entry_id,) = publish(queue, 1)
    (item,) = queue.fetch("c1", 1, 0.01)
    assert item == WorkItem(entry_id, "t0", 1, b"payload", RESULTS.encode())


def test_depth_counts_waiting_running_and_dead_lettered(redis_url: str, redis_client: redis.Redis) -> None:
    queue = RedisTaskQueue(redis_url=redis_url, queue_name="depth", worker_timeout=TIMEOUT, max_deliveries=1)
    assert queue.depth() == QueueDepth(waiting=0, running=0, dead_lettered=0)  # no stream yet
    queue.ensure_group()
    redis_client.xadd(RESULTS, {"open": "1"})
    publish(queue, 5)
    assert queue.depth() == QueueDepth(waiting=5, running=0, dead_lettered=0)
    taken = queue.fetch("c1", 2, 0.01)
    assert queue.depth() == QueueDepth(waiting=3, running=2, dead_lettered=0)
    queue.complete("c1", [(taken[0], b"out")])
    assert queue.depth() == QueueDepth(waiting=3, running=1, dead_lettered=0)
    let_time_out()  # c1 never heartbeats: its remaining delivery is dead-lettered (max_deliveries=1)
    assert queue.reclaim() == 1
    assert queue.depth() == QueueDepth(waiting=3, running=0, dead_lettered=1)
    queue.fetch("c2", 1, 0.01)
    let_time_out()
    queue.reclaim()
    # A running total: the dead-letter stream is capped, the count is not.
    assert queue.depth().dead_lettered == 2 and redis_client.ttl(queue.keys.dead_total) > 0


def test_cancelled_deliveries_leave_the_depth_of_other_tasks_exact(
    queue: RedisTaskQueue, redis_client: redis.Redis
) -> None:
    # A group gives up on members a worker runs now (group_timeout, fail fast): their entries are
    # cancelled. Tasks published afterwards must all count as waiting.
    redis_client.xadd(RESULTS, {"open": "1"})
    publish(queue, 2)
    taken = queue.fetch("c1", 2, 0.01)
    queue.cancel([i.item_id for i in taken])
    redis_client.delete(RESULTS)  # what the group's coordinator does next
    publish(queue, 3, results="graflow:s:other:g:grp:tok:results")
    assert queue.depth() == QueueDepth(waiting=3, running=0, dead_lettered=0)
    # The worker finishing (or giving back) a cancelled delivery finds it gone: nothing posted,
    # nothing requeued, the depth unchanged.
    queue.complete("c1", [(taken[0], b"late")])
    queue.release("c1", [taken[1]])
    assert queue.depth() == QueueDepth(waiting=3, running=0, dead_lettered=0)
    assert results(redis_client) == []
