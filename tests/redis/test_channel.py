"""RedisChannel details beyond the channel conformance suite."""

from __future__ import annotations


def test_shipping_config_replaces_the_live_client_and_drops_the_secret(redis_url: str) -> None:
    import redis as redis_py

    from graflow_redis import RedisChannel

    client = redis_py.Redis.from_url(redis_url)
    channel = RedisChannel("ship", redis_client=client)
    shipped = channel.shipping_config({"redis_client": client, "secret_key": "s3cret", "other": 1})
    assert shipped["other"] == 1
    assert "redis_client" not in shipped and "secret_key" not in shipped
    assert RedisChannel("ship", redis_url=shipped["redis_url"]).get("missing", "default") == "default"
