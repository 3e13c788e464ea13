"""Stores are plugins chosen by the path's scheme; a resume rebuilds the queue and channel through the
plugin registries, so a run on a plugin backend resumes on that backend."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from graflow import TaskWrapper, WorkflowEngine, hookimpl, workflow
from graflow.channels.memory import MemoryChannel
from graflow.checkpoint import LocalCheckpointStore
from graflow.checkpoint.manager import store_for
from graflow.checkpoint.store import CheckpointStore, Part, part_path
from graflow.core.checkpoint import CheckpointManager
from graflow.exceptions import CheckpointNotFoundError, UnknownNameError
from graflow.plugins.manager import PluginHost, default_host
from graflow.queue.base import TaskQueue, TaskSpec


def test_plain_paths_and_file_urls_use_the_builtin_local_store() -> None:
    assert isinstance(store_for("/tmp/x.pkl"), LocalCheckpointStore)
    assert isinstance(store_for("file:///tmp/x.pkl"), LocalCheckpointStore)
    assert default_host().get("checkpoint store", "file").plugin == "graflow.builtin.checkpoints"


def test_unknown_scheme_lists_the_installed_ones() -> None:
    with pytest.raises(UnknownNameError, match=r"no checkpoint store named 'gs'; installed: .*file") as info:
        CheckpointManager.resume_from_checkpoint("gs://bucket/run.pkl")
    assert "graflow plugins" in str(info.value)


def test_s3_without_its_package_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAFLOW_LOAD_PLUGINS", "")  # no entry points: as if graflow-checkpoint-s3 were absent
    host = PluginHost()
    with pytest.raises(UnknownNameError, match="pip install graflow-checkpoint-s3"):
        store_for("s3://bucket/run.pkl", host=host)


# --- a third-party store and backends, registered through the same hooks ---------------------------


class DictStore(CheckpointStore):
    """An in-memory store, the smallest possible plugin store."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    def write_part(self, path: str, part: Part, data: bytes) -> None:
        self.files[part_path(path, part)] = data

    def read_part(self, path: str, part: Part) -> bytes:
        try:
            return self.files[part_path(path, part)]
        except KeyError:
            raise CheckpointNotFoundError(f"{part_path(path, part)!r} is missing") from None

    def delete_part(self, path: str, part: Part) -> None:
        self.files.pop(part_path(path, part), None)

    def list(self, location: str) -> list[str]:
        prefix = location.rstrip("/") + "/"
        return sorted(
            k[: -len(".meta.json")] + ".pkl"
            for k in self.files
            if k.startswith(prefix) and k.endswith(".meta.json") and "/" not in k[len(prefix) :]
        )


class ListQueue(TaskQueue):
    def __init__(self) -> None:
        self.items: deque[TaskSpec] = deque()

    def put(self, spec: TaskSpec) -> None:
        self.items.append(spec)

    def get(self) -> TaskSpec | None:
        return self.items.popleft() if self.items else None

    def pending(self) -> list[TaskSpec]:
        return list(self.items)

    def clear(self) -> None:
        self.items.clear()

    def __len__(self) -> int:
        return len(self.items)


class SharedChannel(MemoryChannel):
    """Stands in for a shared backend: it still holds writes made after the checkpoint."""


class ThirdParty:
    def __init__(self) -> None:
        self.store = DictStore()
        self.channels: dict[str, SharedChannel] = {}

    @hookimpl
    def graflow_register_checkpoint_stores(self, register: Callable[..., None]) -> None:
        register("dict", lambda config: self.store)

    @hookimpl
    def graflow_register_queue_backends(self, register: Callable[..., None]) -> None:
        register("listq", lambda session_id, config: ListQueue())

    @hookimpl
    def graflow_register_channel_backends(self, register: Callable[..., None]) -> None:
        def shared(session_id: str, config: Mapping[str, Any]) -> SharedChannel:
            return self.channels.setdefault(session_id, SharedChannel(session_id))

        register("shared", shared)


def test_a_plugin_store_and_plugin_backends_round_trip() -> None:
    plugin = ThirdParty()
    engine = WorkflowEngine(plugins=[plugin])
    with workflow("third_party") as wf:
        TaskWrapper("one", lambda: 1) >> TaskWrapper("two", lambda one: one + 1)
    context = wf.create_context(engine=engine, queue_backend="listq", channel_backend="shared")
    context.channel.set("k", "at checkpoint")
    path, _ = CheckpointManager.create_checkpoint(context, path="dict://runs/first.pkl", engine=engine)
    context.channel.set("k", "written after the checkpoint")
    assert [m.path for m in CheckpointManager.list_checkpoints("dict://runs", engine=engine)] == [path]

    resumed, metadata = CheckpointManager.resume_from_checkpoint(path, engine=engine)
    assert metadata.backend == {"queue": "listq", "channel": "shared"}
    assert isinstance(resumed.queue, ListQueue)
    assert isinstance(resumed.channel, SharedChannel)
    assert resumed.channel.get("k") == "at checkpoint"  # the snapshot wins over later writes
    assert engine.execute(resumed) == 2
    assert sorted(plugin.store.files) == [
        "dict://runs/first.meta.json",
        "dict://runs/first.pkl",
        "dict://runs/first.state.json",
    ]
    CheckpointManager.prune("dict://runs", keep_last=0, engine=engine)
    assert plugin.store.files == {}
