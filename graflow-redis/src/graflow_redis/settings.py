"""The config keys graflow-redis reads (README: "Settings"), parsed once per backend object."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from graflow_redis import keys


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


@attrs.frozen
class RedisSettings:
    """Every setting with its default; ``from_config`` reads the same keys from a config mapping."""

    key_prefix: str = keys.DEFAULT_PREFIX
    queue_name: str = "default"
    worker_timeout: float = attrs.field(default=10.0, converter=float, validator=attrs.validators.gt(0))
    max_deliveries: int = attrs.field(default=3, converter=int, validator=attrs.validators.ge(1))
    liveness_interval: float = attrs.field(default=1.0, converter=float, validator=attrs.validators.gt(0))
    session_ttl: int = attrs.field(default=keys.SESSION_TTL_S, converter=int, validator=attrs.validators.ge(1))
    queue_ttl: int = attrs.field(default=keys.QUEUE_TTL_S, converter=int, validator=attrs.validators.ge(1))
    result_ttl: int = attrs.field(default=keys.RESULT_TTL_S, converter=int, validator=attrs.validators.ge(1))
    checkpoint_ttl: int = attrs.field(default=keys.CHECKPOINT_TTL_S, converter=int, validator=attrs.validators.ge(0))
    reconnect_timeout: float | None = attrs.field(default=300.0, converter=_optional_float)
    cache_ttl: float = attrs.field(default=keys.CACHE_TTL_S, converter=float, validator=attrs.validators.gt(0))

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> RedisSettings:
        """Settings from ``config`` keys of the same names (missing or ``None``: the default)."""
        config = config or {}
        given: dict[str, Any] = {}
        for field in attrs.fields(cls):
            value = config.get(field.name)
            if value is not None or (field.name == "reconnect_timeout" and field.name in config):
                given[field.name] = value
        return cls(**given)
