"""Channels: the key-value store a run's tasks share."""

from graflow.channels.base import Channel
from graflow.channels.fields import FieldChannel
from graflow.channels.memory import MemoryChannel
from graflow.channels.typed import TypedChannel
from graflow.channels.views import JournalChannel, NamespacedChannel, apply_channel_ops

__all__ = [
    "Channel",
    "FieldChannel",
    "JournalChannel",
    "MemoryChannel",
    "NamespacedChannel",
    "TypedChannel",
    "apply_channel_ops",
]
