"""Where graflow-redis connects, what it ships to workers, and how it waits out a Redis restart."""

from __future__ import annotations

import gc
import threading
import time

import pytest
import redis

from graflow_redis import connection
from graflow_redis.connection import (
    Reconnecting,
    ThreadConnections,
    client_from_config,
    redis_url,
    shippable_config,
    url_of,
)
from graflow_redis.settings import RedisSettings

pytestmark = pytest.mark.redis  # a private redis-server (see conftest.py)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REDIS_URL", "REDIS_HOST", "REDIS_PORT", "REDIS_DB", "REDIS_PASSWORD"):
        monkeypatch.delenv(name, raising=False)


def test_url_defaults_to_localhost() -> None:
    assert redis_url({}) == "redis://localhost:6379/0"


def test_config_url_wins_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://env:1/2")
    assert redis_url({"redis_url": "redis://cfg:3/4"}) == "redis://cfg:3/4"
    assert redis_url({}) == "redis://env:1/2"


def test_redis_host_and_port_from_environment_like_the_kubernetes_manifest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REDIS_HOST", "redis-service")
    assert redis_url({}) == "redis://redis-service:6379/0"
    monkeypatch.setenv("REDIS_PORT", "6380")
    monkeypatch.setenv("REDIS_DB", "3")
    monkeypatch.setenv("REDIS_PASSWORD", "p@ss")
    assert redis_url({}) == "redis://:p%40ss@redis-service:6380/3"


def test_clients_from_one_url_are_shared(redis_url: str) -> None:
    assert client_from_config({"redis_url": redis_url}) is client_from_config({"redis_url": redis_url})


def test_a_decoding_client_is_replaced_by_a_binary_one(redis_url: str) -> None:
    decoding = redis.Redis.from_url(redis_url, decode_responses=True)
    client = client_from_config({"redis_client": decoding})
    client.set("k", b"\x80\xff")
    assert client.get("k") == b"\x80\xff"


def test_url_of_a_client_reaches_the_same_database(redis_server: object, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url.rsplit("/", 1)[0] + "/5", password=None)
    assert url_of(client).endswith(":" + redis_url.rsplit(":", 1)[1].split("/")[0] + "/5")
    assert url_of(redis.Redis(host="h", port=1, db=2, username="u", password="p w")) == "redis://u:p%20w@h:1/2"
    assert url_of(redis.Redis(unix_socket_path="/tmp/r.sock", db=1)) == "unix:///tmp/r.sock?db=1"


def test_shipped_config_has_no_client_and_no_secret(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    shipped = shippable_config({"redis_client": client, "secret_key": "s", "queue_name": "q"})
    assert shipped == {"redis_url": url_of(client), "queue_name": "q"}
    assert shippable_config({"redis_url": "redis://x:1/0", "redis_client": client}) == {"redis_url": "redis://x:1/0"}


def test_shipped_config_names_the_redis_this_process_resolved(monkeypatch: pytest.MonkeyPatch) -> None:
    """A run that found Redis through its environment must send workers there, not to whatever
    their own environment (or --redis-url) names."""
    monkeypatch.setenv("REDIS_URL", "redis://broker.internal:6380/7")
    assert shippable_config({"queue_name": "q"}) == {"queue_name": "q", "redis_url": "redis://broker.internal:6380/7"}
    monkeypatch.delenv("REDIS_URL")
    shipped = shippable_config({"redis_host": "h", "redis_password": "p w", "redis_db": 3})
    assert shipped == {"redis_host": "h", "redis_db": 3, "redis_url": "redis://:p%20w@h:6379/3"}


def test_shipped_config_leaves_every_secret_behind() -> None:
    config = {
        "redis_url": "redis://r:6379/0",
        "secret_key": "k",
        "aws_secret_access_key": "AKIA-secret",
        "api_token": "t",
        "db_password": "pw",
        "gcp_credentials": "{}",
        "docker_mem_limit": "1g",
    }
    assert shippable_config(config) == {"redis_url": "redis://r:6379/0", "docker_mem_limit": "1g"}


def test_settings_read_config_keys_and_validate() -> None:
    settings = RedisSettings.from_config({"worker_timeout": "2.5", "max_deliveries": 5, "queue_name": None})
    assert (settings.worker_timeout, settings.max_deliveries, settings.queue_name) == (2.5, 5, "default")
    assert RedisSettings.from_config({"reconnect_timeout": None}).reconnect_timeout is None
    with pytest.raises(ValueError, match="worker_timeout"):
        RedisSettings.from_config({"worker_timeout": 0})
    with pytest.raises(ValueError, match="max_deliveries"):
        RedisSettings.from_config({"max_deliveries": 0})


def test_reconnecting_waits_out_a_restart(redis_server: object, redis_url: str) -> None:
    server = redis_server
    client = connection.new_client(redis_url)
    client.set("k", 1)
    retry = Reconnecting("test", timeout=30)
    server.stop()  # type: ignore[attr-defined]
    restarter = threading.Timer(0.5, server.start)  # type: ignore[attr-defined]
    restarter.start()
    try:
        assert retry(client.ping) is True
    finally:
        restarter.join()
    assert retry.reconnects == 1


def test_reconnecting_gives_up_after_its_timeout() -> None:
    client = connection.new_client("redis://127.0.0.1:1/0")  # nothing listens on port 1
    retry = Reconnecting("test", timeout=0.3)
    started = time.monotonic()
    with pytest.raises(redis.ConnectionError):
        retry(client.ping)
    assert time.monotonic() - started < 5


def _client_ids(conns: ThreadConnections) -> int:
    (reply,) = conns.call(("CLIENT", "ID"))
    return int(reply)


def test_thread_connections_give_each_thread_its_own_connection(redis_url: str) -> None:
    conns = ThreadConnections(connection.new_client(redis_url))
    mine = _client_ids(conns)
    assert _client_ids(conns) == mine  # kept for the thread's life
    others: list[int] = []
    thread = threading.Thread(target=lambda: others.append(_client_ids(conns)))
    thread.start()
    thread.join()
    assert others and others[0] != mine


def test_thread_connections_pipeline_raw_replies_and_error_replies(redis_url: str) -> None:
    conns = ThreadConnections(connection.new_client(redis_url))
    set_reply, error, value = conns.call(("SET", "k", b"v"), ("INCR", "k"), ("GET", "k"))
    assert value == b"v"  # raw bytes: no response callbacks
    assert set_reply in (b"OK", "OK")
    assert isinstance(error, redis.ResponseError) and "not an integer" in str(error)


def test_thread_connections_reconnect_after_a_dropped_connection(redis_url: str) -> None:
    client = connection.new_client(redis_url)
    conns = ThreadConnections(client)
    first = _client_ids(conns)
    client.client_kill_filter(_id=first)
    with pytest.raises(redis.ConnectionError):
        conns.call(("PING",))  # the dropped connection fails once, loudly
    assert _client_ids(conns) != first  # then a fresh one


def test_closing_thread_connections_disconnects_them(redis_url: str) -> None:
    client = connection.new_client(redis_url)
    conns = ThreadConnections(client)
    mine = _client_ids(conns)
    conns.close()
    deadline = time.monotonic() + 5
    while any(int(c["id"]) == mine for c in client.client_list()):
        assert time.monotonic() < deadline, "the closed connection is still open on the server"
        time.sleep(0.01)


def test_a_finished_threads_connection_is_closed(redis_url: str) -> None:
    client = connection.new_client(redis_url)
    conns = ThreadConnections(client)
    ids: list[int] = []
    thread = threading.Thread(target=lambda: ids.append(_client_ids(conns)))
    thread.start()
    thread.join()
    del thread
    gc.collect()
    deadline = time.monotonic() + 5
    while any(int(c["id"]) == ids[0] for c in client.client_list()):
        assert time.monotonic() < deadline, "a dead thread's connection stayed open"
        time.sleep(0.01)
