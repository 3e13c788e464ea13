"""Every Redis key graflow-redis writes, and how long each lives (README: "Key layout").

Per queue (shared by the fleet that serves it; emptied as work completes):

* ``{p}:q:{queue}:tasks``: stream of task executions, consumer group ``graflow-workers``. Entries are
  deleted when acknowledged. TTL ``queue_ttl``, refreshed by every submit and heartbeat.
* ``{p}:q:{queue}:dead``: dead-lettered tasks (capped at ~1,000 entries). TTL ``queue_ttl``.
* ``{p}:q:{queue}:dead:total``: how many tasks were ever dead-lettered (a counter, for metrics).
  TTL ``queue_ttl``, refreshed by each dead-lettering.
* ``{p}:q:{queue}:workers``: sorted set of consumers by last heartbeat. TTL ``queue_ttl``.
* ``{p}:q:{queue}:hb:{consumer}``: one worker's heartbeat (JSON). TTL ``worker_timeout``: its
  expiry is how a dead worker is noticed.

Per session (one workflow run; nothing another session can see):

* ``{p}:s:{session}:ready``: the run's ready queue (``queue_backend="redis"``). TTL ``session_ttl``.
* ``{p}:s:{session}:channel``: the run's channel (``channel_backend="redis"``). TTL ``session_ttl``.
* ``{p}:s:{session}:g:{group}:{token}:results``: outcomes of one group execution, read by the
  submitter. TTL ``result_ttl``, refreshed while the submitter waits; deleted when the group ends.

Result cache (``cache_store="redis"``, shared by everyone using the prefix):

* ``{p}:cache:{task}:{digest}``: one cached task result (bytes, signed when a key is set). TTL: the
  task's ``cache_ttl``, else config ``cache_ttl``, else 30 days. ``{task}`` is the task id with ``%``, ``:`` and
  the glob characters ``*?[]\\`` percent-escaped, so one task's entries match one ``SCAN`` pattern.

Checkpoints (``redis://`` paths; the path after the scheme names the keys):

* ``{p}:cp:{path}.pkl``, ``.state.json``, ``.meta.json``: a checkpoint's three files. TTL
  ``checkpoint_ttl`` (``0``: keep until deleted).
* ``{p}:cpdir:{location}``: set of the checkpoint names in one location whose meta exists (what
  ``list`` reads). Same TTL, renewed by every checkpoint written there.
"""

from __future__ import annotations

import attrs

DEFAULT_PREFIX = "graflow"
WORKER_GROUP = "graflow-workers"

QUEUE_TTL_S = 7 * 24 * 3600
SESSION_TTL_S = 7 * 24 * 3600
RESULT_TTL_S = 120
CHECKPOINT_TTL_S = 7 * 24 * 3600
CACHE_TTL_S = 30 * 24 * 3600
DEAD_LETTER_MAXLEN = 1000


@attrs.frozen
class QueueKeys:
    """The keys of one named queue."""

    prefix: str
    queue: str

    @property
    def tasks(self) -> str:
        return f"{self.prefix}:q:{self.queue}:tasks"

    @property
    def dead(self) -> str:
        return f"{self.prefix}:q:{self.queue}:dead"

    @property
    def dead_total(self) -> str:
        return f"{self.prefix}:q:{self.queue}:dead:total"

    @property
    def workers(self) -> str:
        return f"{self.prefix}:q:{self.queue}:workers"

    def heartbeat(self, consumer: str) -> str:
        return f"{self.prefix}:q:{self.queue}:hb:{consumer}"


@attrs.frozen
class SessionKeys:
    """The keys of one session (workflow run)."""

    prefix: str
    session: str

    @property
    def ready(self) -> str:
        return f"{self.prefix}:s:{self.session}:ready"

    @property
    def channel(self) -> str:
        return f"{self.prefix}:s:{self.session}:channel"

    def results(self, group: str, token: str) -> str:
        return f"{self.prefix}:s:{self.session}:g:{group}:{token}:results"


_CACHE_ESCAPES = {c: f"%{ord(c):02X}" for c in "%:*?[]\\"}


def _escape_task(task_id: str) -> str:
    return "".join(_CACHE_ESCAPES.get(c, c) for c in task_id)


def cache_key(prefix: str, task_id: str, digest: str) -> str:
    """The key of one cached result."""
    return f"{prefix}:cache:{_escape_task(task_id)}:{digest}"


def cache_pattern(prefix: str, task_id: str | None = None) -> str:
    """A ``SCAN MATCH`` pattern for one task's cached results, or for all of them (``None``)."""
    escaped_prefix = "".join(f"\\{c}" if c in "*?[]\\" else c for c in prefix)
    if task_id is None:
        return f"{escaped_prefix}:cache:*"
    return f"{escaped_prefix}:cache:{_escape_task(task_id)}:*"
