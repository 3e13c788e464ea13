"""Fixtures for the graflow-redis unit and conformance tests: a private redis-server per session."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))

from graflow_test_redis import redis_client, redis_server, redis_url, start_worker

__all__ = ["redis_client", "redis_server", "redis_url", "start_worker"]
