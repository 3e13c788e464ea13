"""RedisCoordinator: a parallel group's members run on the TaskWorker fleet (``CoordinationBackend.REDIS``).

One group execution: members are published to the queue's work stream in pipelined batches; workers
post outcomes to a results stream of this execution only (``{p}:s:{session}:g:{group}:{token}:results``),
which ``collect`` reads with a blocking ``XREAD``. Between reads, once per ``liveness_interval``, it
renews its keys, reclaims the work of dead workers, and checks that Redis still has its results
stream: if Redis restarted without its data, every member still outstanding is published again. The
first outcome of each ``(task, cycle)`` counts; redelivered duplicates are dropped here.

Nothing here waits for a fixed time: the barrier lasts as long as the members run, bounded only by
the group's ``group_timeout`` option, if set.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from graflow.coordination.base import GroupCoordinator, MemberOutcome, MemberRun, MemberRunner
from graflow.core import remote
from graflow.exceptions import ExecutionError, PayloadRejectedError
from graflow.logs import get_logger
from graflow_redis.connection import Reconnecting, client_from_config, shippable_config
from graflow_redis.keys import DEFAULT_PREFIX, SessionKeys
from graflow_redis.queue import RedisTaskQueue
from graflow_redis.settings import RedisSettings

log = get_logger("graflow.redis")

PUBLISH_BATCHES = (8, 64, 500)
"""Members per pipeline, growing: workers start on the first few while the rest are still being
serialized (W5: 200 members take ~8 ms to build), and big groups still go in large round trips."""

READ_COUNT = 10_000


class TaskDeadLetteredError(ExecutionError):
    """A task was dead-lettered: the workers that ran it died ``deaths`` times (``max_deliveries``)."""

    def __init__(self, task_id: str, deaths: int, last_consumer: str, queue: str, dead_key: str) -> None:
        self.task_id = task_id
        self.deaths = deaths
        self.last_consumer = last_consumer
        self.queue = queue
        super().__init__(
            f"task {task_id!r} was dead-lettered: the worker running it died {deaths} times "
            f"(max_deliveries), last {last_consumer!r}. It is kept in Redis stream {dead_key!r} for "
            "inspection; fix the task (out of memory? a crash in native code?) or raise max_deliveries."
        )


class RedisCoordinator(GroupCoordinator):
    """Runs one group execution on the workers of ``queue_name``. Settings: :mod:`graflow_redis.settings`."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.settings = RedisSettings.from_config(config)
        self.client = client_from_config(config)
        self.queue = RedisTaskQueue(redis_client=self.client, config=config)
        self._secret = remote.secret_key(config)
        self._retry = Reconnecting("coordinator", self.settings.reconnect_timeout)
        self._outstanding: dict[tuple[str, int], dict[str, Any]] = {}
        self._ids: dict[tuple[str, int], str] = {}
        self._results = ""
        self._last_id = "0-0"
        self._next_check = 0.0
        self._reconnects = 0
        self._warned_idle = False
        self._progressed = False  # outcomes arrived since the last liveness check
        self._opened = False

    # --- GroupCoordinator ------------------------------------------------------------------------------

    def open(self, runner: MemberRunner) -> None:
        self._runner = runner
        ctx = runner.context
        self._session = ctx.session_id
        token = uuid.uuid4().hex[:12]
        self._results = SessionKeys(self.settings.key_prefix, ctx.session_id).results(runner.group.task_id, token)
        # A shared channel is reopened by each worker: send its settings, minus live clients and keys.
        self._channel_config = shippable_config(ctx.config) if ctx.channel_backend != "memory" else None
        self._retry(self._create_results)
        self._next_check = time.monotonic() + self.settings.liveness_interval
        self._opened = True

    def submit(self, runs: Sequence[MemberRun]) -> None:
        encoder = remote.RequestEncoder(self._secret)
        for chunk in _chunks(runs):
            batch = [((run.task_id, run.cycle), self._entry(run, encoder)) for run in chunk]
            ids = self._retry(self.queue.publish, [fields for _, fields in batch])
            for (key, fields), entry_id in zip(batch, ids, strict=True):
                self._outstanding[key] = fields
                self._ids[key] = entry_id

    def collect(self, timeout: float | None = None) -> list[MemberOutcome]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            now = time.monotonic()
            if now >= self._next_check or self._retry.reconnects != self._reconnects:
                self._check_liveness()
                now = time.monotonic()
            wait = self._next_check - now
            if deadline is not None:
                wait = min(wait, deadline - now)
            reply = self._retry(
                self.client.xread,
                {self._results: self._last_id},
                count=READ_COUNT,
                block=max(1, int(wait * 1000)),
            )
            outcomes = self._parse(reply)
            if outcomes:
                return outcomes
            if deadline is not None and time.monotonic() >= deadline:
                return []

    def close(self) -> None:
        if not self._opened:
            return
        self._opened = False
        try:
            if self._ids:  # members that never reported: nobody should start them any more
                self.queue.cancel(list(self._ids.values()))
            self.client.delete(self._results)
        except Exception as exc:  # never hide the error that made the group end
            log.warning("group_cleanup_failed", results=self._results, error=f"{type(exc).__name__}: {exc}")
        self._outstanding.clear()
        self._ids.clear()

    # --- internals ---------------------------------------------------------------------------------

    def _entry(self, run: MemberRun, encoder: remote.RequestEncoder) -> dict[str, Any]:
        request = self._runner.build_request(run)
        if self._channel_config is not None:
            request.channel_config = self._channel_config
        return {
            "t": run.task_id,
            "c": run.cycle,
            "p": encoder.dumps(request),
            "r": self._results,
            "s": self._session,
            "n": 0,
        }

    def _create_results(self) -> None:
        """The results stream exists from the start (workers post only to existing ones), with an
        opening entry and a TTL; its absence later means Redis lost our data. The work stream and
        its consumer group are made sure of in the same round trip."""
        pipe = self.client.pipeline(transaction=False)
        pipe.xadd(self._results, {"open": self._session})
        pipe.expire(self._results, self.settings.result_ttl)
        self.queue.ensure_group(pipe)
        for reply in pipe.execute(raise_on_error=False):
            if isinstance(reply, Exception) and "BUSYGROUP" not in str(reply):
                raise reply

    def _parse(self, reply: Any) -> list[MemberOutcome]:
        outcomes: list[MemberOutcome] = []
        for _stream, entries in reply or ():
            for entry_id, fields in entries:
                self._last_id = entry_id.decode()
                raw_task = fields.get(b"t")
                if raw_task is None:
                    continue  # the opening entry
                key = (raw_task.decode(), int(fields[b"c"]))
                if self._outstanding.pop(key, None) is None:
                    continue  # a duplicate from a redelivery: the first outcome counted
                self._ids.pop(key, None)
                outcomes.append(self._outcome(key, fields))
        if outcomes:
            self._progressed = True
        return outcomes

    def _outcome(self, key: tuple[str, int], fields: dict[bytes, bytes]) -> MemberOutcome:
        if b"dl" in fields:
            consumer = fields.get(b"w", b"?").decode()
            error: BaseException = TaskDeadLetteredError(
                key[0], int(fields[b"dl"]), consumer, self.queue.queue_name, self.queue.keys.dead
            )
            return MemberOutcome(key[0], key[1], error=error, worker_id=consumer)
        try:
            return remote.loads_outcome(fields[b"o"], self._secret)
        except PayloadRejectedError as exc:  # the worker signs with another key, or none: say so
            error = PayloadRejectedError(
                f"the outcome of task {key[0]!r} from a worker was refused: {exc}. The worker's secret key "
                "is missing or differs from this process's: give every worker the same GRAFLOW_SECRET_KEY "
                "(a worker that cannot verify a payload logs payload_rejected)"
            )
            log.error("outcome_rejected", task_id=key[0], error=str(error))
            return MemberOutcome(key[0], key[1], error=error, worker_id="?")
        except Exception as exc:  # unreadable: the member failed
            log.error("outcome_rejected", task_id=key[0], error=f"{type(exc).__name__}: {exc}")
            return MemberOutcome(key[0], key[1], error=exc, worker_id="?")

    def _check_liveness(self) -> None:
        self._reconnects = self._retry.reconnects
        self._next_check = time.monotonic() + self.settings.liveness_interval

        def renew() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            pipe.exists(self._results)
            pipe.expire(self._results, self.settings.result_ttl)
            pipe.expire(self.queue.keys.tasks, self.settings.queue_ttl)
            if self._last_id != "0-0":
                pipe.xtrim(self._results, minid=self._last_id)  # outcomes already read
            return pipe.execute()

        if not self._retry(renew)[0]:
            self._recover()
        self._retry(self.queue.reclaim)
        progressed, self._progressed = self._progressed, False
        if progressed or self._warned_idle or not self._outstanding:
            return
        if not self._retry(self.queue.workers):  # nothing came back for a while: is anyone there?
            self._warned_idle = True
            log.warning(
                "no_live_workers",
                queue=self.queue.queue_name,
                waiting=len(self._outstanding),
                hint="start workers: python -m graflow.worker.main --queue "
                + self.queue.queue_name
                + ("" if self.settings.key_prefix == DEFAULT_PREFIX else f" --key-prefix {self.settings.key_prefix}"),
            )

    def _recover(self) -> None:
        """Redis came back without our keys (restarted without persistence): publish again what is
        outstanding. Outcomes that still arrive from before are duplicates and get dropped."""
        log.warning("redis_data_lost", results=self._results, republishing=len(self._outstanding))
        self._retry(self._create_results)
        self._last_id = "0-0"
        for chunk in _chunks(list(self._outstanding)):
            ids = self._retry(self.queue.publish, [self._outstanding[k] for k in chunk])
            self._ids.update(zip(chunk, ids, strict=True))


def _chunks(items: Sequence[Any]) -> list[Sequence[Any]]:
    out, start, step = [], 0, 0
    while start < len(items):
        size = PUBLISH_BATCHES[min(step, len(PUBLISH_BATCHES) - 1)]
        out.append(items[start : start + size])
        start, step = start + size, step + 1
    return out
