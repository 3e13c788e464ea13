"""Conformance suite for checkpoint stores: subclass it and override the ``store`` and ``location`` fixtures.

``location`` is an empty location the test may fill (a directory, ``s3://bucket/prefix``); the
manager-level tests resolve the store from its scheme through the installed plugins, with
``store_config`` (override it to pass e.g. ``endpoint_url``)::

    class TestS3Store(CheckpointStoreSuite):
        @pytest.fixture
        def store(self, s3_config): return S3CheckpointStore.from_config(s3_config)

        @pytest.fixture
        def location(self, bucket): return f"s3://{bucket}/{uuid.uuid4().hex}"
"""

from __future__ import annotations

import mmap
from typing import Any

import pytest

from graflow.checkpoint.manager import CheckpointManager
from graflow.checkpoint.store import PARTS, CheckpointStore
from graflow.core.context import TaskExecutionContext
from graflow.core.decorators import task
from graflow.core.engine import WorkflowEngine
from graflow.core.workflow import workflow
from graflow.exceptions import CheckpointCorruptedError, CheckpointNotFoundError


@task(inject_context=True)
def suite_produce(context: TaskExecutionContext) -> int:
    context.get_channel().set("produced", [1, 2, 3])
    context.checkpoint(metadata={"stage": "produced"})
    return 6


@task
def suite_consume(suite_produce: int) -> int:
    return suite_produce * 7


def _files(tag: bytes) -> tuple[bytes, bytes, bytes]:
    return b"pickle:" + tag + bytes(range(256)), b'{"state": "' + tag + b'"}', b'{"meta": "' + tag + b'"}'


class CheckpointStoreSuite:
    """Write, read, list, delete, prune and atomic visibility, on the store and through the manager."""

    @pytest.fixture
    def store(self) -> CheckpointStore:
        raise NotImplementedError("override the `store` fixture to return the CheckpointStore under test")

    @pytest.fixture
    def location(self) -> str:
        raise NotImplementedError("override the `location` fixture to return an empty location for the test")

    @pytest.fixture
    def store_config(self) -> dict[str, Any]:
        return {}

    @staticmethod
    def write(store: CheckpointStore, path: str, tag: bytes) -> None:
        pkl, state, meta = _files(tag)
        store.write(path, pkl, state, lambda: meta)

    # --- the store ---------------------------------------------------------------------------------

    def test_written_files_read_back_byte_for_byte(self, store: CheckpointStore, location: str) -> None:
        path = store.join(location, "one.pkl")
        big = bytes(range(256)) * 4096  # 1 MiB with every byte value
        store.write(path, big, b"{}", lambda: b'{"m": 1}')
        assert store.read_part(path, "pkl") == big
        assert store.read_part(path, "state") == b"{}"
        assert store.read_part(path, "meta") == b'{"m": 1}'

    def test_mapped_files_read_back_byte_for_byte(self, store: CheckpointStore, location: str) -> None:
        for name, data in (("small", b"tiny"), ("large", bytes(range(256)) * 4096)):
            path = store.join(location, name + ".pkl")
            store.write(path, data, b"{}", lambda: b"{}")
            mapped = store.map_part(path, "pkl")
            try:
                assert bytes(mapped) == data
            finally:
                if isinstance(mapped, mmap.mmap):
                    mapped.close()
        with pytest.raises(CheckpointNotFoundError):
            store.map_part(store.join(location, "absent.pkl"), "pkl")

    def test_missing_checkpoint_raises_not_found_naming_the_file(self, store: CheckpointStore, location: str) -> None:
        path = store.join(location, "absent.pkl")
        with pytest.raises(CheckpointNotFoundError, match=r"absent\.meta\.json"):
            store.read_part(path, "meta")
        with pytest.raises(CheckpointNotFoundError, match=r"absent\.pkl"):
            store.read_part(path, "pkl")

    def test_list_shows_checkpoints_directly_inside_the_location(self, store: CheckpointStore, location: str) -> None:
        assert store.list(location) == []
        first, second = store.join(location, "a.pkl"), store.join(location, "b.pkl")
        self.write(store, first, b"a")
        self.write(store, second, b"b")
        self.write(store, store.join(store.join(location, "nested"), "c.pkl"), b"c")
        assert sorted(store.list(location)) == sorted([first, second])

    def test_checkpoint_without_meta_is_invisible(self, store: CheckpointStore, location: str) -> None:
        path = store.join(location, "partial.pkl")
        pkl, state, meta = _files(b"p")
        store.write_part(path, "pkl", pkl)
        store.write_part(path, "state", state)
        assert store.list(location) == []  # a write that died before its meta
        store.write_part(path, "meta", meta)
        assert store.list(location) == [path]

    def test_checkpoint_is_invisible_until_its_meta_is_stored(self, store: CheckpointStore, location: str) -> None:
        path = store.join(location, "order.pkl")
        calls: list[list[str]] = []

        def meta() -> bytes:
            calls.append(store.list(location))  # still invisible while the meta is being made
            return b"{}"

        store.write(path, b"data", b"{}", meta)
        assert calls == [[]]
        assert store.list(location) == [path]
        assert store.read_part(path, "pkl") == b"data"

    def test_a_failing_meta_leaves_no_checkpoint(self, store: CheckpointStore, location: str) -> None:
        path = store.join(location, "failed.pkl")

        def meta() -> bytes:
            raise RuntimeError("no meta")

        with pytest.raises(RuntimeError, match="no meta"):
            store.write(path, b"data", b"{}", meta)
        assert store.list(location) == []

    def test_rewriting_a_path_replaces_the_checkpoint(self, store: CheckpointStore, location: str) -> None:
        path = store.join(location, "again.pkl")
        self.write(store, path, b"old")
        self.write(store, path, b"new")
        assert store.read_part(path, "pkl") == _files(b"new")[0]
        assert store.read_part(path, "meta") == _files(b"new")[2]
        assert store.list(location) == [path]

    def test_delete_removes_every_file_and_is_idempotent(self, store: CheckpointStore, location: str) -> None:
        path = store.join(location, "gone.pkl")
        self.write(store, path, b"g")
        store.delete(path)
        assert store.list(location) == []
        for part in PARTS:
            with pytest.raises(CheckpointNotFoundError):
                store.read_part(path, part)
        store.delete(path)

    # --- through the manager -----------------------------------------------------------------------

    def _run(self, location: str, config: dict[str, Any]) -> tuple[str, Any]:
        with workflow("conformance") as wf:
            suite_produce >> suite_consume
        context = wf.create_context(config={**config, "checkpoint_dir": location})
        WorkflowEngine().execute(context)
        assert context.last_checkpoint_path is not None
        return context.last_checkpoint_path, context

    def test_checkpoint_resumes_with_what_was_pending(self, location: str, store_config: dict[str, Any]) -> None:
        path, original = self._run(location, store_config)
        context, metadata = CheckpointManager.resume_from_checkpoint(path, config=store_config)
        assert metadata.user_metadata == {"stage": "produced"}
        assert metadata.session_id == original.session_id
        assert [spec.task_id for spec in context.queue.pending()] == ["suite_consume"]
        assert context.get_channel().get("produced") == [1, 2, 3]
        assert WorkflowEngine().execute(context) == 42
        assert context.results == original.results

    def test_explicit_path_round_trips(self, location: str, store_config: dict[str, Any]) -> None:
        _, original = self._run(location, store_config)
        path = location.rstrip("/") + "/explicit/snapshot.pkl"
        written, _ = CheckpointManager.create_checkpoint(original, metadata={"n": 1}, path=path, config=store_config)
        assert written == path
        context, metadata = CheckpointManager.resume_from_checkpoint(path, config=store_config)
        assert metadata.user_metadata == {"n": 1}
        assert context.results == original.results

    def test_list_prune_and_delete(self, location: str, store_config: dict[str, Any]) -> None:
        _, context = self._run(location, store_config)
        folder = location.rstrip("/") + "/many"
        paths = [
            CheckpointManager.create_checkpoint(context, {"i": i}, path=f"{folder}/c{i}.pkl", config=store_config)[0]
            for i in range(4)
        ]
        listed = CheckpointManager.list_checkpoints(folder, config=store_config)
        assert [m.path for m in listed] == paths  # oldest first
        assert [m.user_metadata["i"] for m in listed] == [0, 1, 2, 3]
        deleted = CheckpointManager.prune(folder, keep_last=2, config=store_config)
        assert deleted == paths[:2]
        assert [m.path for m in CheckpointManager.list_checkpoints(folder, config=store_config)] == paths[2:]
        CheckpointManager.delete_checkpoint(paths[3], config=store_config)
        assert [m.path for m in CheckpointManager.list_checkpoints(folder, config=store_config)] == [paths[2]]
        with pytest.raises(CheckpointNotFoundError):
            CheckpointManager.resume_from_checkpoint(paths[3], config=store_config)

    def test_signed_checkpoint_refuses_another_key(self, location: str, store_config: dict[str, Any]) -> None:
        _, context = self._run(location, store_config)
        signed = {**store_config, "secret_key": "right"}
        path, _ = CheckpointManager.create_checkpoint(context, path=location.rstrip("/") + "/signed.pkl", config=signed)
        restored, _ = CheckpointManager.resume_from_checkpoint(path, config=signed)
        assert restored.results == context.results
        with pytest.raises(CheckpointCorruptedError, match="signature does not match"):
            CheckpointManager.resume_from_checkpoint(path, config={**store_config, "secret_key": "wrong"})
