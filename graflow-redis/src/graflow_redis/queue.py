"""RedisTaskQueue: a run's ready queue in Redis, and the work stream a TaskWorker fleet consumes.

Two roles in one object, as in the spec (``RedisTaskQueue(context, redis_client=...)`` for a run,
``TaskWorker(RedisTaskQueue(redis_url=...))`` for a worker):

* as a :class:`~graflow.queue.base.TaskQueue` (``queue_backend="redis"``) it is the session's list of
  ready tasks;
* as a :class:`~graflow.worker.WorkSource` it is the queue's stream of task executions, read through
  one consumer group by every worker: ``XREADGROUP`` hands each entry to one consumer and keeps it in
  that consumer's pending list until acknowledged, so a worker that dies holding work loses nothing.
  Its heartbeat key expires ``worker_timeout`` seconds after its last beat; then any live worker or
  submitter moves its pending entries back into the stream (``reclaim``, one Lua script per dead
  consumer), counting the death in the entry. At ``max_deliveries`` deaths the task is dead-lettered
  and its group receives an error instead.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import redis

from graflow.core import remote
from graflow.exceptions import GraflowError
from graflow.logs import get_logger
from graflow.queue.base import TaskQueue, TaskSpec
from graflow.worker.protocol import QueueDepth, WorkItem
from graflow_redis import codec, scripts
from graflow_redis.connection import (
    REFUSED,
    Reconnecting,
    ThreadConnections,
    access_error,
    client_from_config,
    merge_config,
    text,
)
from graflow_redis.keys import DEAD_LETTER_MAXLEN, WORKER_GROUP, QueueKeys, SessionKeys
from graflow_redis.settings import RedisSettings

if TYPE_CHECKING:
    from graflow.core.context import ExecutionContext

log = get_logger("graflow.redis")

RECLAIM_BATCH = 500

ROUTE_RECHECK_S = 5.0

LOST_SCAN = 100
"""Pending entries of one consumer looked at per ``release_lost`` call (one call per heartbeat)."""
"""How long a results stream seen alive is trusted before checking again (orphan detection)."""


class RedisTaskQueue(TaskQueue):
    """Ready queue of one session, and work source for TaskWorkers on ``queue_name``.

    Connection: ``redis_client``, else ``redis_url``, else ``config``/environment (see
    :mod:`graflow_redis.connection`). Other keyword arguments override the settings read from
    ``config`` (:class:`~graflow_redis.settings.RedisSettings`).
    """

    def __init__(
        self,
        context: ExecutionContext | None = None,
        *,
        redis_client: redis.Redis | None = None,
        redis_url: str | None = None,
        session_id: str | None = None,
        config: Mapping[str, Any] | None = None,
        **settings: Any,
    ) -> None:
        merged = merge_config(config, settings, redis_client, redis_url)
        self.settings = RedisSettings.from_config(merged)
        self.client = client_from_config(merged)
        self.session_id = session_id or (context.session_id if context is not None else None)
        self.queue_name = self.settings.queue_name
        self.worker_timeout = self.settings.worker_timeout
        self.max_deliveries = self.settings.max_deliveries
        self.keys = QueueKeys(self.settings.key_prefix, self.queue_name)
        self._secret = remote.secret_key(merged)
        self._retry = Reconnecting("queue", self.settings.reconnect_timeout)
        self._complete = self.client.register_script(scripts.COMPLETE)
        self._release = self.client.register_script(scripts.RELEASE)
        self._reclaim = self.client.register_script(scripts.RECLAIM)
        self._routes: dict[bytes, float] = {}
        self._group_ready = False
        self._slots = ThreadConnections(self.client)  # worker slots' reads (fetch)

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> RedisTaskQueue:
        return cls(redis_url=url, **kwargs)

    @classmethod
    def from_config(cls, session_id: str, config: Mapping[str, Any]) -> RedisTaskQueue:
        """What ``queue_backend="redis"`` builds (``session_id`` empty: a worker's queue)."""
        return cls(session_id=session_id or None, config=config)

    def __enter__(self) -> RedisTaskQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections of worker slots' reads; the client is shared per process and stays."""
        self._slots.close()

    # --- the session's ready queue (TaskQueue) --------------------------------------------------------

    @property
    def _ready(self) -> str:
        if not self.session_id:
            raise GraflowError(
                "this RedisTaskQueue has no session: pass the run's context (RedisTaskQueue(context, ...)) "
                "or session_id= to use it as a run's ready queue"
            )
        return SessionKeys(self.settings.key_prefix, self.session_id).ready

    def _encode(self, spec: TaskSpec) -> bytes:
        return codec.encode((spec.task_id, spec.data), self._secret)

    def _decode(self, raw: bytes | str) -> TaskSpec:
        task_id, data = codec.decode(raw, self._secret, f"ready-queue entry of session {self.session_id!r}")
        return TaskSpec(task_id, data)

    def put(self, spec: TaskSpec) -> None:
        self.put_many((spec,))

    def put_many(self, specs: Iterable[TaskSpec]) -> None:
        values = [self._encode(spec) for spec in specs]
        if not values:
            return
        key = self._ready

        def push() -> None:
            pipe = self.client.pipeline(transaction=True)
            pipe.rpush(key, *values)
            pipe.expire(key, self.settings.session_ttl)
            pipe.execute()

        self._retry(push)

    def get(self) -> TaskSpec | None:
        raw: Any = self._retry(self.client.lpop, self._ready)
        return None if raw is None else self._decode(raw)

    def pending(self) -> list[TaskSpec]:
        return [self._decode(raw) for raw in self._retry(self.client.lrange, self._ready, 0, -1)]

    def clear(self) -> None:
        self._retry(self.client.delete, self._ready)

    def __len__(self) -> int:
        return int(self._retry(self.client.llen, self._ready))

    # --- the work stream: submitting side ------------------------------------------------------------

    def ensure_group(self, pipe: redis.client.Pipeline | None = None) -> None:
        """Create the stream and its consumer group if missing (after a Redis restart, too).

        The group starts at ``0``: entries added before it existed are still delivered. With
        ``pipe``, the commands are only queued there (its caller ignores the "group exists" error).
        """
        own = pipe is None
        pipe = self.client.pipeline(transaction=False) if pipe is None else pipe
        pipe.xgroup_create(self.keys.tasks, WORKER_GROUP, id="0", mkstream=True)
        pipe.expire(self.keys.tasks, self.settings.queue_ttl)
        if own:
            for reply in pipe.execute(raise_on_error=False):
                if isinstance(reply, Exception) and "BUSYGROUP" not in str(reply):
                    raise reply
        self._group_ready = True

    def publish(self, entries: Sequence[Mapping[str, Any]]) -> list[str]:
        """Append task entries to the work stream in one round trip; returns their ids."""
        pipe = self.client.pipeline(transaction=False)
        for fields in entries:
            pipe.xadd(self.keys.tasks, dict(fields))  # type: ignore[arg-type]
        pipe.expire(self.keys.tasks, self.settings.queue_ttl)
        replies = pipe.execute()
        return [text(r) for r in replies[:-1]]

    def cancel(self, ids: Sequence[str]) -> None:
        """Delete entries nobody should run any more (their group ended), in one round trip.

        Acknowledged as well as deleted: an entry a worker still runs would otherwise stay pending
        while gone from the stream, and :meth:`depth` (stream length minus pending) would count it
        against the tasks that wait. The worker's later ``complete`` (or ``release``, a reclaim)
        finds the entry gone and only acknowledges it again, which is harmless."""
        if not ids:
            return
        pipe = self.client.pipeline(transaction=True)
        for start in range(0, len(ids), 1000):
            chunk = ids[start : start + 1000]
            pipe.xack(self.keys.tasks, WORKER_GROUP, *chunk)
            pipe.xdel(self.keys.tasks, *chunk)
        pipe.execute()

    # --- the work stream: worker side (WorkSource) ---------------------------------------------------

    def fetch(
        self, consumer: str, max_items: int, block_s: float, done: Sequence[tuple[WorkItem, bytes]] = ()
    ) -> list[WorkItem]:
        """Read up to ``max_items`` new entries for ``consumer``; ``done`` is completed first, by the
        server, in the same round trip (even if the read then blocks). Each calling thread reads on a
        connection of its own (:class:`~graflow_redis.connection.ThreadConnections`)."""
        if not self._group_ready:
            self.ensure_group()
        read: tuple[Any, ...] = ("XREADGROUP", "GROUP", WORKER_GROUP, consumer, "COUNT", max_items)
        if block_s > 0:  # 0: look without waiting
            read += ("BLOCK", max(1, int(block_s * 1000)))
        read += ("STREAMS", self.keys.tasks, ">")
        if done:
            complete = ("EVALSHA", self._complete.sha, 1, self.keys.tasks, *self._complete_args(done))
            replies = self._slots.call(complete, read)
        else:
            replies = self._slots.call(read)
        reply = replies[-1]
        items: list[WorkItem] = []
        if isinstance(reply, redis.ResponseError):
            # NOGROUP: the stream is gone (Redis restarted empty, or the key expired): recreate it.
            if "NOGROUP" not in str(reply) and "no longer exists" not in str(reply):
                raise reply
            self.ensure_group()
        else:
            items = self._items(reply)
        if done and isinstance(replies[0], Exception):
            try:
                if not isinstance(replies[0], redis.exceptions.NoScriptError):
                    raise replies[0]
                self.complete(consumer, done)  # scripts are gone after a restart: this reloads them
            except Exception:
                self.release(consumer, items)  # nothing fetched may stay held by a failing call
                raise
        return self._drop_orphans(items) if items else items

    def _items(self, reply: Any) -> list[WorkItem]:
        """Work items from a raw ``XREADGROUP`` reply: ``nil``, or per stream (a RESP2 list of pairs,
        a RESP3 map) its entries as ``[id, [field, value, ...]]``."""
        items: list[WorkItem] = []
        malformed: list[bytes] = []
        streams = reply.items() if isinstance(reply, dict) else (reply or ())
        for _stream, entries in streams:
            for entry_id, flat in entries:
                try:
                    fields = dict(zip(flat[::2], flat[1::2], strict=True))
                    items.append(
                        WorkItem(
                            entry_id.decode(),
                            fields[b"t"].decode(),
                            int(fields[b"c"]),
                            fields[b"p"],
                            fields[b"r"],
                        )
                    )
                except (KeyError, TypeError, ValueError, AttributeError):
                    malformed.append(entry_id)
        if malformed:
            log.error("task_entries_malformed", queue=self.queue_name, ids=[i.decode() for i in malformed])
            self._drop(malformed)
        return items

    def _drop(self, ids: Sequence[bytes | str]) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.xack(self.keys.tasks, WORKER_GROUP, *ids)
        pipe.xdel(self.keys.tasks, *ids)
        pipe.execute()

    def _drop_orphans(self, items: list[WorkItem]) -> list[WorkItem]:
        """Skip tasks whose results stream is gone: their submitter ended or died, nobody waits."""
        now = time.monotonic()
        unknown = {i.route for i in items if now - self._routes.get(i.route, -ROUTE_RECHECK_S) >= ROUTE_RECHECK_S}
        if not unknown:
            return items
        routes = list(unknown)
        pipe = self.client.pipeline(transaction=False)
        for route in routes:
            pipe.exists(route)
        dead = set()
        for route, alive in zip(routes, pipe.execute(), strict=True):
            if alive:
                self._routes[route] = now
            else:
                self._routes.pop(route, None)
                dead.add(route)
        if len(self._routes) > 10_000:
            self._routes.clear()
        if not dead:
            return items
        orphans = [i for i in items if i.route in dead]
        log.info(
            "tasks_orphaned",
            queue=self.queue_name,
            count=len(orphans),
            tasks=[i.task_id for i in orphans][:10],
        )
        self._drop([i.item_id for i in orphans])
        return [i for i in items if i.route not in dead]

    @staticmethod
    def _complete_args(done: Sequence[tuple[WorkItem, bytes]]) -> list[Any]:
        args: list[Any] = [WORKER_GROUP]
        for item, outcome in done:
            args += (item.item_id, item.route, item.task_id, item.cycle, outcome)
        return args

    def complete(self, consumer: str, done: Sequence[tuple[WorkItem, bytes]]) -> None:
        if done:
            self._complete(keys=[self.keys.tasks], args=self._complete_args(done))

    def release(self, consumer: str, items: Sequence[WorkItem]) -> None:
        if items:
            self._release(keys=[self.keys.tasks], args=[WORKER_GROUP, *(i.item_id for i in items)])

    def heartbeat(self, consumer: str, info: Mapping[str, Any]) -> None:
        try:
            self._beat(consumer, info)
        except REFUSED as exc:  # a worker's first call: wrong credentials end it (exit 2), not retried
            raise access_error(exc) from exc

    def _beat(self, consumer: str, info: Mapping[str, Any]) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.set(
            self.keys.heartbeat(consumer),
            json.dumps(dict(info), default=str),
            px=int(self.worker_timeout * 1000),
        )
        pipe.zadd(self.keys.workers, {consumer: time.time()})
        pipe.expire(self.keys.workers, self.settings.queue_ttl)
        pipe.expire(self.keys.tasks, self.settings.queue_ttl)
        pipe.execute()

    def release_lost(self, consumer: str, known: Collection[str], min_idle_s: float) -> int:
        """Entries pending for ``consumer`` that it does not hold, delivered ``min_idle_s`` or more
        ago, go back to the stream (``XPENDING ... IDLE``, then the release script). They exist when
        a read's reply was lost: Redis counts the entry as delivered, the worker never saw it, and
        nothing else would ever hand it out again while that worker lives."""
        try:
            pending = self.client.xpending_range(
                self.keys.tasks,
                WORKER_GROUP,
                "-",
                "+",
                LOST_SCAN,
                consumername=consumer,
                idle=max(1, int(min_idle_s * 1000)),
            )
        except redis.ResponseError:  # no stream or group: nothing pending
            return 0
        lost = [entry_id for p in pending if (entry_id := text(p["message_id"])) not in known]
        if lost:
            self._release(keys=[self.keys.tasks], args=[WORKER_GROUP, *lost])
        return len(lost)

    def leave(self, consumer: str) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.delete(self.keys.heartbeat(consumer))
        pipe.zrem(self.keys.workers, consumer)
        pipe.xpending_range(self.keys.tasks, WORKER_GROUP, "-", "+", 1, consumername=consumer)
        try:
            _, _, held = pipe.execute()
        except redis.ResponseError:  # no group: nothing held
            return
        if not held:  # never delete a consumer that still holds entries: they would be lost
            self.client.xgroup_delconsumer(self.keys.tasks, WORKER_GROUP, consumer)

    def reclaim(self) -> int:
        try:
            consumers = self.client.xinfo_consumers(self.keys.tasks, WORKER_GROUP)
        except redis.ResponseError:  # no stream or group yet
            return 0
        if not consumers:
            return 0
        names = [text(c["name"]) for c in consumers]
        pipe = self.client.pipeline(transaction=False)
        for name in names:
            pipe.exists(self.keys.heartbeat(name))
        alive = pipe.execute()
        timeout_ms = int(self.worker_timeout * 1000)
        moved = dead_lettered = 0
        for name, info, is_alive in zip(names, consumers, alive, strict=True):
            if is_alive or int(info.get("idle", 0)) < timeout_ms:
                continue  # beating, or read moments ago (its beat is on the way after a Redis restart)
            if int(info.get("pending", 0)) == 0:  # gone, holding nothing: tidy up
                self.client.xgroup_delconsumer(self.keys.tasks, WORKER_GROUP, name)
                self.client.zrem(self.keys.workers, name)
                continue
            requeued_here = dead_here = 0
            while True:
                requeued, dead = self._reclaim(
                    keys=[self.keys.tasks, self.keys.heartbeat(name), self.keys.dead, self.keys.dead_total],
                    args=[
                        WORKER_GROUP, name, self.max_deliveries, RECLAIM_BATCH, DEAD_LETTER_MAXLEN,
                        self.settings.queue_ttl, timeout_ms,
                    ],
                )  # fmt: skip
                requeued_here += int(requeued)
                dead_here += int(dead)
                if int(requeued) + int(dead) < RECLAIM_BATCH:
                    break
            if requeued_here or dead_here:
                self.client.zrem(self.keys.workers, name)
                log.warning(
                    "worker_presumed_dead", queue=self.queue_name, consumer=name, requeued=requeued_here,
                    dead_lettered=dead_here,
                )  # fmt: skip
            moved += requeued_here
            dead_lettered += dead_here
        if dead_lettered:
            log.error(
                "tasks_dead_lettered",
                queue=self.queue_name,
                count=dead_lettered,
                max_deliveries=self.max_deliveries,
            )
        return moved + dead_lettered

    def workers(self) -> dict[str, dict[str, Any]]:
        names = [text(n) for n in self.client.zrange(self.keys.workers, 0, -1)]
        if not names:
            return {}
        beats = self.client.mget([self.keys.heartbeat(n) for n in names])
        gone = [n for n, b in zip(names, beats, strict=True) if b is None]
        if gone:
            self.client.zrem(self.keys.workers, *gone)
        return {n: json.loads(b) for n, b in zip(names, beats, strict=True) if b is not None}

    def depth(self) -> QueueDepth:
        """Waiting and running deliveries, and the dead-letter total, in one round trip (``XLEN``,
        ``XINFO GROUPS``, ``GET``: no scan). Acknowledged entries are deleted, so the stream holds
        exactly what waits plus what runs; ``running`` is the consumer group's pending count."""
        pipe = self.client.pipeline(transaction=False)
        pipe.xlen(self.keys.tasks)
        pipe.xinfo_groups(self.keys.tasks)
        pipe.get(self.keys.dead_total)
        length, groups, dead = pipe.execute(raise_on_error=False)
        for reply in (length, dead):
            if isinstance(reply, Exception):
                raise reply
        running = 0
        if not isinstance(groups, Exception):  # no stream yet: nothing runs
            for group in groups:
                if text(group["name"]) == WORKER_GROUP:
                    running = int(group["pending"])
        return QueueDepth(waiting=max(0, int(length) - running), running=running, dead_lettered=int(dead or 0))

    def dead_letters(self, count: int = 100) -> list[dict[str, Any]]:
        """The most recent dead-lettered tasks (payload left out), newest first."""
        entries: Any = self.client.xrevrange(self.keys.dead, count=count)
        return [
            {"id": text(eid), **{text(k): text(v) for k, v in fields.items() if k != b"p"}} for eid, fields in entries
        ]

    def __repr__(self) -> str:
        return f"RedisTaskQueue(queue={self.queue_name!r}, session={self.session_id!r})"
