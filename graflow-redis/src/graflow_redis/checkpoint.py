"""RedisCheckpointStore: checkpoints at ``redis://`` paths, for fleets that already share a Redis.

The path after the scheme names keys, not a server: ``redis://etl/nightly/ckpt.pkl`` is stored as
``graflow:cp:etl/nightly/ckpt.pkl`` (and ``.state.json``, ``.meta.json``), on the server the config or
environment points at (``redis_url``, ``redis_client``, ``REDIS_URL``, ...), so credentials never
appear in checkpoint paths or logs. Each file is one ``SET``; the meta is written last and removed
first, together with its entry in the location's index, so a checkpoint is listed only once whole.
Keys expire after ``checkpoint_ttl`` seconds (default 7 days; ``0`` keeps them until deleted).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import redis

from graflow.checkpoint.store import CheckpointStore, Part, part_path, split_scheme
from graflow.exceptions import CheckpointError, CheckpointNotFoundError
from graflow_redis.connection import Reconnecting, client_from_config, text
from graflow_redis.settings import RedisSettings

T = TypeVar("T")

SCHEME = "redis"


class RedisCheckpointStore(CheckpointStore):
    """Checkpoint files as Redis strings, listed through one set per location."""

    def __init__(self, client: redis.Redis, settings: RedisSettings | None = None) -> None:
        self.client = client
        self.settings = settings or RedisSettings()
        self._prefix = self.settings.key_prefix
        self._ttl = self.settings.checkpoint_ttl or None
        self._retry = Reconnecting("checkpoint", self.settings.reconnect_timeout)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> RedisCheckpointStore:
        return cls(client_from_config(config), RedisSettings.from_config(config))

    # --- keys --------------------------------------------------------------------------------------

    @staticmethod
    def _rest(path: str) -> str:
        scheme, rest = split_scheme(path)
        if scheme != SCHEME:
            raise CheckpointError(f"not a Redis checkpoint location: {path!r}; expected redis://<name>/...")
        return rest

    def _key(self, path: str, part: Part) -> str:
        return f"{self._prefix}:cp:{self._rest(part_path(path, part))}"

    def _index(self, path: str) -> tuple[str, str]:
        location, _, name = self._rest(path).rpartition("/")
        return f"{self._prefix}:cpdir:{location}", name

    def _call(self, action: str, path: str, fn: Callable[[], T]) -> T:
        try:
            return self._retry(fn)
        except redis.RedisError as exc:
            raise CheckpointError(f"Redis {action} of {path!r} failed: {type(exc).__name__}: {exc}") from exc

    # --- CheckpointStore ---------------------------------------------------------------------------

    def write_part(self, path: str, part: Part, data: bytes) -> None:
        key = self._key(path, part)

        def write() -> None:
            pipe = self.client.pipeline(transaction=True)
            pipe.set(key, data, ex=self._ttl)
            if part == "meta":  # the commit record: listed from now on
                index, name = self._index(path)
                pipe.sadd(index, name)
                if self._ttl:
                    pipe.expire(index, self._ttl)
            pipe.execute()

        self._call("write", part_path(path, part), write)

    def read_part(self, path: str, part: Part) -> bytes:
        target = part_path(path, part)
        data: Any = self._call("read", target, lambda: self.client.get(self._key(path, part)))
        if data is None:
            hint = " (no checkpoint there, it expired, or its write never finished)" if part == "meta" else ""
            raise CheckpointNotFoundError(f"checkpoint file {target!r} is missing{hint}")
        return bytes(data)

    def delete_part(self, path: str, part: Part) -> None:
        key = self._key(path, part)

        def delete() -> None:
            pipe = self.client.pipeline(transaction=True)
            pipe.delete(key)
            if part == "meta":
                pipe.srem(*self._index(path))
            pipe.execute()

        self._call("delete", part_path(path, part), delete)

    def list(self, location: str) -> list[str]:
        rest = self._rest(location).rstrip("/")
        index = f"{self._prefix}:cpdir:{rest}"
        names = sorted(text(n) for n in self._call("list", location, lambda: self.client.smembers(index)))
        if not names:
            return []
        base = f"{SCHEME}://{rest}/" if rest else f"{SCHEME}://"
        paths = [base + name for name in names]

        def metas() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            for path in paths:
                pipe.exists(self._key(path, "meta"))
            return pipe.execute()

        present = self._call("list", location, metas)
        gone = [name for name, exists in zip(names, present, strict=True) if not exists]
        if gone:  # expired metas: forget them in the index too
            self._call("list", location, lambda: self.client.srem(index, *gone))
        return [path for path, exists in zip(paths, present, strict=True) if exists]

    def join(self, location: str, name: str) -> str:
        if location.endswith("://"):
            return location + name
        return super().join(location, name)
