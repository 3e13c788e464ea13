"""RedisChannel: a session's channel as one Redis hash, shared by the run and every worker (spec section 8).

Values keep their Python types (cloudpickle, signed when a key is set; integers as decimal text).
``increment`` by an integer is ``HINCRBY``; ``update``/``append`` (and ``increment`` of non-integers)
are optimistic transactions (``WATCH``/``MULTI``) retried on conflict, so concurrent writers in
different processes never lose a write. Every write renews the hash's TTL (``session_ttl``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import redis
from redis.exceptions import WatchError

from graflow.channels.base import Channel
from graflow.core import remote
from graflow_redis import codec
from graflow_redis.connection import Reconnecting, client_from_config, merge_config, shippable_config, text
from graflow_redis.keys import SessionKeys
from graflow_redis.settings import RedisSettings


class RedisChannel(Channel):
    """The channel of session ``name``. ``RedisChannel(session_id, redis_url=...)`` opens a run's
    channel from any process, e.g. to watch progress from outside."""

    def shipping_config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """No live client (its URL instead) and no secret key: see ``connection.shippable_config``."""
        return shippable_config(config)

    def __init__(
        self,
        name: str,
        *,
        redis_client: redis.Redis | None = None,
        redis_url: str | None = None,
        config: Mapping[str, Any] | None = None,
        **settings: Any,
    ) -> None:
        merged = merge_config(config, settings, redis_client, redis_url)
        self.name = name
        self.settings = RedisSettings.from_config(merged)
        self.client = client_from_config(merged)
        self.key = SessionKeys(self.settings.key_prefix, name).channel
        self._ttl = self.settings.session_ttl
        self._secret = remote.secret_key(merged)
        self._retry = Reconnecting("channel", self.settings.reconnect_timeout)

    @classmethod
    def from_config(cls, session_id: str, config: Mapping[str, Any]) -> RedisChannel:
        """What ``channel_backend="redis"`` builds."""
        return cls(session_id, config=config)

    def _encode(self, value: Any) -> bytes:
        return codec.encode(value, self._secret)

    def _decode(self, field: str, raw: bytes | str) -> Any:
        return codec.decode(raw, self._secret, f"channel key {field!r} of session {self.name!r}")

    def _write(self, *commands: tuple[str, tuple[Any, ...]]) -> list[Any]:
        def run() -> list[Any]:
            pipe = self.client.pipeline(transaction=True)
            for name, args in commands:
                getattr(pipe, name)(*args)
            pipe.expire(self.key, self._ttl)
            return pipe.execute()

        return self._retry(run)

    def set(self, key: str, value: Any) -> None:
        self._write(("hset", (self.key, key, self._encode(value))))

    def get(self, key: str, default: Any = None) -> Any:
        raw = self._retry(self.client.hget, self.key, key)
        return default if raw is None else self._decode(key, raw)

    def delete(self, key: str) -> bool:
        return bool(self._retry(self.client.hdel, self.key, key))

    def keys(self) -> list[str]:
        return [text(k) for k in self._retry(self.client.hkeys, self.key)]

    def clear(self) -> None:
        self._retry(self.client.delete, self.key)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and bool(self._retry(self.client.hexists, self.key, key))

    def items(self) -> dict[str, Any]:
        raw = self._retry(self.client.hgetall, self.key)
        return {text(k): self._decode(text(k), v) for k, v in raw.items()}

    def update(self, key: str, fn: Callable[[Any], Any], default: Any = None) -> Any:
        def attempt() -> Any:
            with self.client.pipeline(transaction=True) as pipe:
                while True:
                    try:
                        pipe.watch(self.key)  # type: ignore[no-untyped-call]
                        raw = pipe.hget(self.key, key)
                        value = fn(default if raw is None else self._decode(key, raw))
                        pipe.multi()
                        pipe.hset(self.key, key, self._encode(value))
                        pipe.expire(self.key, self._ttl)
                        pipe.execute()
                        return value
                    except WatchError:  # another writer got in between: read again
                        continue

        return self._retry(attempt)

    def increment(self, key: str, amount: int | float = 1) -> int | float:
        if type(amount) is int:
            try:
                return int(self._write(("hincrby", (self.key, key, amount)))[0])
            except redis.ResponseError:  # the value is not an integer (a float, say): add in Python
                pass
        return super().increment(key, amount)

    def __repr__(self) -> str:
        return f"RedisChannel({self.name!r})"
