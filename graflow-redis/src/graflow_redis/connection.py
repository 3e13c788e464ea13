"""Redis clients from config or environment, and retrying calls across restarts and dropped connections.

Where the connection comes from, first match wins: config ``redis_client`` (a live client), config
``redis_url``, ``REDIS_URL``, ``REDIS_HOST``/``REDIS_PORT``/``REDIS_DB``/``REDIS_PASSWORD``, then
``redis://localhost:6379/0``. Clients built from a URL are shared per process and URL, so a worker
that opens a channel per task reuses one connection pool.
"""

from __future__ import annotations

import os
import random
import threading
import time
import urllib.parse
import weakref
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from graflow.core.remote import is_secret_setting
from graflow.exceptions import BackendAccessError
from graflow.logs import get_logger

log = get_logger("graflow.redis")

T = TypeVar("T")

DEFAULT_URL = "redis://localhost:6379/0"

# Errors worth waiting out: the server restarting (connection refused, LOADING), a dropped connection.
RETRYABLE: tuple[type[BaseException], ...] = (redis.ConnectionError, redis.TimeoutError)
# ... except these two, which redis-py derives from ConnectionError: wrong credentials stay wrong.
REFUSED: tuple[type[BaseException], ...] = (redis.AuthenticationError, redis.exceptions.AuthorizationError)


def access_error(exc: BaseException) -> BackendAccessError:
    """What a refused login or command becomes: a GraflowError that says what to fix."""
    return BackendAccessError(
        f"Redis refused this process ({type(exc).__name__}: {exc}); check the password or ACL user in "
        "redis_url (or REDIS_URL / REDIS_PASSWORD) and the user's permissions"
    )


_clients: dict[str, redis.Redis] = {}
_clients_lock = threading.Lock()


def text(value: bytes | str | Any) -> str:
    """A key or field name as ``str`` (our clients return bytes; redis-py's types say either)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def redis_url(config: Mapping[str, Any] | None = None) -> str:
    """The URL the config or the environment points at (not looking at ``redis_client``)."""
    config = config or {}
    url = config.get("redis_url") or os.environ.get("REDIS_URL")
    if url:
        return str(url)
    host = config.get("redis_host") or os.environ.get("REDIS_HOST")
    if not host:
        return DEFAULT_URL
    port = config.get("redis_port") or os.environ.get("REDIS_PORT") or 6379
    db = config.get("redis_db") or os.environ.get("REDIS_DB") or 0
    password = config.get("redis_password") or os.environ.get("REDIS_PASSWORD")
    auth = f":{urllib.parse.quote(str(password), safe='')}@" if password else ""
    return f"redis://{auth}{host}:{port}/{db}"


def merge_config(
    config: Mapping[str, Any] | None,
    settings: Mapping[str, Any],
    redis_client: redis.Redis | None = None,
    redis_url: str | None = None,
) -> dict[str, Any]:
    """``config`` with keyword settings on top, and an explicit client or URL winning over both."""
    merged: dict[str, Any] = {**(config or {}), **settings}
    if redis_client is not None:
        merged["redis_client"] = redis_client
    if redis_url is not None:
        merged["redis_url"] = redis_url
        merged.pop("redis_client", None)
    return merged


def new_client(url: str) -> redis.Redis:
    """A binary-safe client whose errors reach our own retry loop (redis-py's own retries are off,
    so a restart is waited out with logs and data-loss checks, not hidden inside one call)."""
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=5,
        socket_timeout=30,  # longer than any blocking read we issue (they block for seconds)
        socket_keepalive=True,
        retry=Retry(NoBackoff(), 0),
    )


def binary_client(client: redis.Redis) -> redis.Redis:
    """``client``, or a sibling on the same server when it decodes responses (payloads are bytes)."""
    kwargs = dict(client.connection_pool.connection_kwargs)
    if not kwargs.get("decode_responses"):
        return client
    kwargs["decode_responses"] = False
    pool = redis.ConnectionPool(connection_class=client.connection_pool.connection_class, **kwargs)
    return redis.Redis(connection_pool=pool)


def client_from_config(config: Mapping[str, Any] | None = None) -> redis.Redis:
    """The client for ``config``: its ``redis_client``, else a shared one for its URL."""
    client = (config or {}).get("redis_client")
    if client is not None:
        return binary_client(client)
    url = redis_url(config)
    with _clients_lock:
        cached = _clients.get(url)
        if cached is None:
            cached = _clients[url] = new_client(url)
        return cached


def url_of(client: redis.Redis) -> str:
    """A URL that reaches the same server and database as ``client`` (to tell another process)."""
    kw = client.connection_pool.connection_kwargs
    user = kw.get("username") or ""
    password = kw.get("password") or ""
    auth = ""
    if user or password:
        auth = f"{urllib.parse.quote(str(user), safe='')}:{urllib.parse.quote(str(password), safe='')}@"
    db = kw.get("db") or 0
    if kw.get("path"):
        return f"unix://{auth}{kw['path']}?db={db}"
    scheme = "rediss" if "SSL" in client.connection_pool.connection_class.__name__ else "redis"
    return f"{scheme}://{auth}{kw.get('host', 'localhost')}:{kw.get('port', 6379)}/{db}"


def shippable_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` as it may travel inside a task payload, which rests in Redis (and in the dead-letter
    stream for days): no live client, and no secrets (the signing key, passwords, tokens, cloud
    credentials: :func:`graflow.core.remote.is_secret_setting`; a worker that needs one gets it from
    its own environment). The Redis URL always goes, resolved here from the client, the config or
    this process's environment: a worker must reach this run's Redis, not the one its own
    environment or its ``--redis-url`` names. An explicit ``redis_url`` wins over the client's (the
    workers may see the server under another name than this process does)."""
    out = {k: v for k, v in config.items() if k != "redis_client" and not is_secret_setting(k)}
    client = config.get("redis_client")
    if not out.get("redis_url"):
        out["redis_url"] = url_of(client) if client is not None else redis_url(config)
    return out


class ThreadConnections:
    """One connection per thread, owned for the thread's life, for the hot path of worker slots.

    Checking a connection out of redis-py's pool and back runs ~40 µs of bookkeeping per command,
    which after 20 ms idle on a small VM (caches cold) grows to ~150 µs, paid on every task by a slot
    that reads its next task itself (performance issue, W5). A slot blocks in its reads anyway, so it
    may as well own the connection. Commands go as one pipeline and replies come back raw (no
    response callbacks): RESP2 or RESP3 structures, error replies as exception objects.
    """

    def __init__(self, client: redis.Redis) -> None:
        self._pool = client.connection_pool
        self._local = threading.local()
        self._lock = threading.Lock()
        self._opened: weakref.WeakSet[Any] = weakref.WeakSet()  # a thread's ends with it: no leak

    def call(self, *commands: tuple[Any, ...]) -> list[Any]:
        """Send ``commands`` in one round trip; their raw replies, in order.

        A connection that failed is dropped (the next call reconnects), and the error raised.
        """
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._pool.connection_class(**self._pool.connection_kwargs)
            with self._lock:
                self._opened.add(conn)
            self._local.conn = conn
        replies: list[Any] = []
        try:
            conn.send_packed_command(conn.pack_commands(commands), check_health=False)
            for _ in commands:
                try:
                    replies.append(conn.read_response())
                except redis.ResponseError as exc:  # an error reply: the connection is still fine
                    replies.append(exc)
        except BaseException:
            conn.disconnect()
            raise
        return replies

    def close(self) -> None:
        """Disconnect every thread's connection (a thread that calls again reconnects)."""
        with self._lock:
            opened = list(self._opened)
        for conn in opened:
            conn.disconnect()


class Reconnecting:
    """Calls Redis, waiting out restarts and dropped connections with exponential backoff.

    Gives up (re-raising) after ``timeout`` seconds of failing (``None``: never). ``reconnects``
    counts recoveries, so callers can check what a restart may have lost.
    """

    def __init__(self, what: str, timeout: float | None = 300.0, base: float = 0.05, cap: float = 2.0) -> None:
        self.what = what
        self.timeout = timeout
        self.base = base
        self.cap = cap
        self.reconnects = 0

    def __call__(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        attempt = 0
        failing_since = 0.0
        while True:
            try:
                result = fn(*args, **kwargs)
            except REFUSED as exc:
                raise access_error(exc) from exc
            except RETRYABLE as exc:
                now = time.monotonic()
                if attempt == 0:
                    failing_since = now
                    log.warning("redis_unavailable", who=self.what, error=f"{type(exc).__name__}: {exc}")
                if self.timeout is not None and now - failing_since > self.timeout:
                    log.error("redis_gave_up", who=self.what, after_s=round(now - failing_since, 1))
                    raise
                time.sleep(min(self.cap, self.base * 2**attempt) * (0.5 + random.random() / 2))
                attempt += 1
                continue
            if attempt:
                self.reconnects += 1
                log.info("redis_reconnected", who=self.what, attempts=attempt)
            return result
