"""Conformance suites that every backend and handler runs, the built-ins first (needs pytest)."""

from graflow.testing.cache_store import CacheStoreSuite
from graflow.testing.channel import ChannelBackendSuite
from graflow.testing.checkpoint_store import CheckpointStoreSuite
from graflow.testing.handler import HandlerSuite
from graflow.testing.queue import QueueBackendSuite

__all__ = ["CacheStoreSuite", "ChannelBackendSuite", "CheckpointStoreSuite", "HandlerSuite", "QueueBackendSuite"]
