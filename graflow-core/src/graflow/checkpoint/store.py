"""The checkpoint store contract: where a checkpoint's three files live, chosen by the path's scheme.

A checkpoint is addressed by the path of its ``.pkl`` file; its ``.state.json`` and ``.meta.json``
share the stem (``runs/a/ckpt.pkl``, ``runs/a/ckpt.state.json``, ``runs/a/ckpt.meta.json``; on S3
``s3://bucket/prefix/ckpt.pkl`` and its sibling keys). The meta file is the commit record: it is
written last and removed first, and a checkpoint without it does not exist for ``list`` or resume,
so a crash in the middle of a write never leaves a checkpoint that looks complete.
"""

from __future__ import annotations

import mmap
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Literal

Part = Literal["pkl", "state", "meta"]
Blob = bytes | mmap.mmap
"""What :meth:`CheckpointStore.map_part` returns: bytes, or a read-only mapping of the file."""

PARTS: tuple[Part, ...] = ("pkl", "state", "meta")
SUFFIXES: dict[Part, str] = {"pkl": ".pkl", "state": ".state.json", "meta": ".meta.json"}


def split_scheme(path: str) -> tuple[str, str]:
    """``("s3", "bucket/key")`` for ``s3://bucket/key``; ``("file", path)`` for a plain path."""
    scheme, sep, rest = path.partition("://")
    if not sep:
        return "file", path
    return scheme.lower(), rest


def normalize_path(path: str) -> str:
    """The ``.pkl`` path a user meant: ``ckpt`` and ``ckpt.pkl`` both name ``ckpt.pkl``."""
    return path if path.endswith(".pkl") else path + ".pkl"


def part_path(path: str, part: Part) -> str:
    """The path of one of a checkpoint's files, from the checkpoint's ``.pkl`` path."""
    return path[: -len(".pkl")] + SUFFIXES[part]


class CheckpointStore(ABC):
    """Reads and writes the three files of checkpoints at one kind of location.

    Stores deal in bytes only: what the files contain (digests, signatures, the pickle) is decided by
    :class:`graflow.checkpoint.manager.CheckpointManager`, so every store gets integrity checks and
    HMAC signing for free. Implement the four ``*_part``/``list`` methods; override :meth:`write`
    when the backend can make the sequence cheaper (the local store batches its fsyncs).
    """

    @abstractmethod
    def write_part(self, path: str, part: Part, data: bytes) -> None:
        """Store one file so that it appears whole or not at all (temp file + rename, or one PUT)."""

    @abstractmethod
    def read_part(self, path: str, part: Part) -> bytes:
        """One file's bytes; raises CheckpointNotFoundError naming the file when it is missing."""

    def map_part(self, path: str, part: Part) -> Blob:
        """Like :meth:`read_part`, but a store may return a read-only mapping of the file instead,
        which saves copying a large pickle (the local store does). A mapping shows writes made to
        the file in place while it is open, so the manager uses it only for checkpoints whose
        signature it does not have to trust, and closes it after loading."""
        return self.read_part(path, part)

    @abstractmethod
    def delete_part(self, path: str, part: Part) -> None:
        """Remove one file; a missing file is not an error."""

    @abstractmethod
    def list(self, location: str) -> list[str]:
        """The ``.pkl`` paths of the checkpoints directly inside ``location`` whose meta exists."""

    def write(self, path: str, pkl: bytes, state: bytes, meta: Callable[[], bytes]) -> None:
        """Write a whole checkpoint: hide any old one at ``path``, write the data, then the meta.

        ``meta()`` makes the meta bytes (it hashes ``pkl``); call it, from any thread, once the
        data is on its way, so hashing can overlap the I/O. The meta must become visible only after
        the data is stored.
        """
        self.delete_part(path, "meta")
        self.write_part(path, "pkl", pkl)
        self.write_part(path, "state", state)
        self.write_part(path, "meta", meta())

    def delete(self, path: str) -> None:
        """Delete a checkpoint, meta first so it is invisible from the first step on. Idempotent."""
        for part in ("meta", "state", "pkl"):
            self.delete_part(path, part)

    def join(self, location: str, name: str) -> str:
        """The path of ``name`` inside ``location`` (the default checkpoint paths are built with it)."""
        return location.rstrip("/") + "/" + name

    def close(self) -> None:  # noqa: B027 - optional
        """Release clients or connections."""
