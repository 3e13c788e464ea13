"""The local store's overlapped write (issue #7, W6) keeps the guarantees of issue #4: old mappings
stay intact, a failed write leaves nothing behind, and large files are written with or without
``sync_file_range``."""

from __future__ import annotations

import mmap
from pathlib import Path

import pytest

from graflow.checkpoint import local
from graflow.checkpoint.local import LocalCheckpointStore

BIG = bytes(range(256)) * 4096  # 1 MiB: written piece by piece


def write(store: LocalCheckpointStore, path: str, pkl: bytes, tag: bytes) -> None:
    store.write(path, pkl, b'{"state": "' + tag + b'"}', lambda: b'{"meta": "' + tag + b'"}')


def test_overwriting_leaves_a_mapped_old_pickle_intact(tmp_path: Path) -> None:
    store = LocalCheckpointStore()
    path = str(tmp_path / "same.pkl")
    write(store, path, BIG, b"old")
    mapped = store.map_part(path, "pkl")
    assert isinstance(mapped, mmap.mmap)
    try:
        write(store, path, BIG[::-1], b"new")
        assert mapped[:] == BIG  # a new file took the name; the mapped one was not touched
    finally:
        mapped.close()
    assert store.read_part(path, "pkl") == BIG[::-1]
    assert store.read_part(path, "meta") == b'{"meta": "new"}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["same.meta.json", "same.pkl", "same.state.json"]


def test_a_failing_meta_leaves_nothing_at_the_path(tmp_path: Path) -> None:
    store = LocalCheckpointStore()
    path = str(tmp_path / "ckpt.pkl")
    write(store, path, BIG, b"old")

    def meta() -> bytes:
        raise RuntimeError("no meta")

    with pytest.raises(RuntimeError, match="no meta"):
        store.write(path, BIG, b"{}", meta)
    assert list(tmp_path.iterdir()) == []  # no temporaries, no pickle or state without a meta


def test_a_failing_pickle_write_leaves_nothing_and_reports_its_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(fd: int, data: bytes) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(local, "_write_streaming", disk_full)
    made: list[bool] = []

    def meta() -> bytes:
        made.append(True)
        return b"{}"

    with pytest.raises(OSError, match="No space left"):
        LocalCheckpointStore().write(str(tmp_path / "full.pkl"), BIG, b"{}", meta)
    assert made == [True]  # the background meta was waited for before cleaning up
    assert list(tmp_path.iterdir()) == []


def test_large_pickles_are_written_without_sync_file_range_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local, "_sync_file_range", lambda: None)  # as on macOS
    store = LocalCheckpointStore()
    path = str(tmp_path / "plain.pkl")
    write(store, path, BIG, b"p")
    assert store.read_part(path, "pkl") == BIG
