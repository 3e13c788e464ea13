"""Local file checkpoint store: plain paths and ``file://`` URLs, on a local or mounted filesystem.

How :meth:`LocalCheckpointStore.write` keeps a checkpoint atomic and durable (issue #4):

1. The old meta at the path, if any, is unlinked: from here on no reader takes the path for a
   checkpoint, whatever happens to the other two files.
2. The pickle and the state are each written to a new temporary file, fsynced, and renamed to
   their final names. New files, so a reader that mapped the previous pickle keeps its intact copy
   (nothing is ever truncated or rewritten in place), and two writers at one path never share one.
3. The meta is made (it holds the size and digest of the other two), written to a temporary file
   and fsynced.
4. Only when 2 and 3 are done is the meta renamed into place: the checkpoint appears, atomically,
   with every byte it refers to already on disk. Then the directory is fsynced, which makes the
   three renames durable, and only then does ``write`` return.

Only fsynced files are ever renamed into place, so every name that survives a crash points to
complete data. A crash before 4 leaves no meta, or (the unlink in 1 not yet on disk) the old one,
which resumes the old checkpoint if its files survived and is refused otherwise: its digests no
longer match. A crash between the meta's rename and the directory fsync may keep any subset of the
renames; a meta whose pickle or state rename was lost is refused the same way (missing, or not
matching its digests). Resume checks sizes and digests before unpickling anything. A write that
fails with an error removes what it wrote: the path then holds no checkpoint (step 1 removed the
old one).

The steps overlap without changing that order (performance issue #7, W6): this thread does the
pickle's part of step 2 while the background pool does step 3 (hashing the pickle as it is being
written) and the state's part of step 2, so the three fsyncs are in flight together rather than one
after another, and only the meta's rename and the directory fsync follow the pickle's fsync. The
pickle's writeback is also started piece by piece as it is written (``sync_file_range`` on Linux),
so its fsync waits for less. (The ext4 measured has no journal, so concurrent fsyncs share no
journal commit there: what overlapping saves is waiting for each one's writes and cache flush in
turn.)
"""

from __future__ import annotations

import contextlib
import functools
import mmap
import os
import sys
import uuid
from collections.abc import Callable
from concurrent.futures import Future, wait

from graflow.checkpoint import background
from graflow.checkpoint.store import PARTS, SUFFIXES, Blob, CheckpointStore, Part, part_path, split_scheme
from graflow.exceptions import CheckpointError, CheckpointNotFoundError

_MAP_MIN_BYTES = 64 * 1024
"""Below this, one read is cheaper than setting up and tearing down a mapping."""


def _fs_path(path: str) -> str:
    """The filesystem path of a plain path or a ``file://`` URL."""
    scheme, rest = split_scheme(path)
    if scheme != "file":
        raise CheckpointError(f"the local checkpoint store cannot handle {path!r} (scheme {scheme!r})")
    return rest


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


_WRITEBACK_CHUNK = 256 * 1024
"""A large file is written in pieces this size, each handed to the disk as soon as it is written."""

_SYNC_FILE_RANGE_WRITE = 2


@functools.cache
def _sync_file_range() -> Callable[[int, int, int, int], object] | None:
    """Linux's ``sync_file_range``, None elsewhere (looked up on first use: ctypes takes ~2 ms to import)."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        fn = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


def _write_streaming(fd: int, data: bytes) -> None:
    """``data`` written so that the disk starts on it while the rest is still being copied.

    ``sync_file_range(SYNC_FILE_RANGE_WRITE)`` starts the writeback of each piece without waiting
    for it (PostgreSQL and RocksDB use it the same way), so the fsync that follows waits for less:
    ~0.55 instead of ~0.7 ms for 1 MiB here (performance issue #7, W6). Only a head start: the
    fsync is still what makes the data durable, and an error here is the fsync's to report.
    """
    start = _sync_file_range() if len(data) > _WRITEBACK_CHUNK else None
    if start is None:
        _write_all(fd, data)
        return
    view = memoryview(data)
    offset = 0
    while offset < len(view):
        written = os.write(fd, view[offset : offset + _WRITEBACK_CHUNK])
        start(fd, offset, written, _SYNC_FILE_RANGE_WRITE)
        offset += written


def _temp_name(final: str) -> str:
    """A fresh name next to ``final``: never a checkpoint file, so never listed or read."""
    return f"{final}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _create(file: str, data: bytes) -> int:
    """A new file holding ``data`` (never an existing one changed in place); returns its open fd."""
    fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        _write_all(fd, data)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _fsync_close(fd: int) -> None:
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _create_synced(file: str, make: Callable[[], bytes]) -> None:
    """``make()``'s bytes in a new, fsynced ``file``."""
    _fsync_close(_create(file, make()))


def _fsync_close_rename(fd: int, temp: str, final: str) -> None:
    _fsync_close(fd)
    os.replace(temp, final)


def _fsync_in_background(fd: int, temp: str, final: str) -> Future[None]:
    """``fd`` fsynced, closed and its file renamed from ``temp`` to ``final`` on the pool."""
    try:
        return background.submit(_fsync_close_rename, fd, temp, final)
    except BaseException:
        os.close(fd)
        raise


def _read_fd(fd: int, size: int) -> bytes:
    chunks = []
    while size > 0 and (chunk := os.read(fd, size)):
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _fsync_dir(directory: str) -> None:
    fd = os.open(directory or ".", os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalCheckpointStore(CheckpointStore):
    """Checkpoints as files on a local or mounted filesystem."""

    def write_part(self, path: str, part: Part, data: bytes) -> None:
        final = _fs_path(part_path(path, part))
        directory = os.path.dirname(final)
        if directory:
            os.makedirs(directory, exist_ok=True)
        temp = _temp_name(final)
        try:
            _fsync_close_rename(_create(temp, data), temp, final)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        _fsync_dir(directory)

    def read_part(self, path: str, part: Part) -> bytes:
        file = _fs_path(part_path(path, part))
        try:
            with open(file, "rb", buffering=0) as f:
                return f.readall()
        except FileNotFoundError:
            raise CheckpointNotFoundError(_missing_message(file, part)) from None

    def map_part(self, path: str, part: Part) -> Blob:
        """A large file as a read-only mapping, its pages mapped in one call (MAP_POPULATE): for a
        1 MiB pickle this halves the cost of a resume, which would otherwise fault in fresh memory
        for a copy (issue #7, W6). Safe against our own writers, which never change a file in place
        (they write a new file and rename it); a file truncated in place while mapped would crash
        the process with SIGBUS."""
        file = _fs_path(part_path(path, part))
        try:
            fd = os.open(file, os.O_RDONLY)
        except FileNotFoundError:
            raise CheckpointNotFoundError(_missing_message(file, part)) from None
        try:
            size = os.fstat(fd).st_size
            if size < _MAP_MIN_BYTES:
                return _read_fd(fd, size)
            flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
            return mmap.mmap(fd, size, flags=flags, prot=mmap.PROT_READ)
        finally:
            os.close(fd)

    def delete_part(self, path: str, part: Part) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(_fs_path(part_path(path, part)))

    def list(self, location: str) -> list[str]:
        directory = _fs_path(location)
        suffix = SUFFIXES["meta"]
        try:
            with os.scandir(directory) as entries:
                names = [e.name[: -len(suffix)] for e in entries if e.name.endswith(suffix)]
        except (FileNotFoundError, NotADirectoryError):
            return []
        return [self.join(location, name + ".pkl") for name in sorted(names)]

    def write(self, path: str, pkl: bytes, state: bytes, meta: Callable[[], bytes]) -> None:
        """The steps of the module docstring, overlapped (performance issue #7, W6).

        This thread creates, writes and fsyncs the pickle; the pool makes the meta meanwhile
        (``meta()`` hashes the pickle) and writes and fsyncs it. The state is written after the
        pickle, its fsync handed to the pool just before this thread waits on the pickle's: started
        any earlier, it would compete for the CPU with the hashing and the copying of the pickle
        (on a 2-vCPU VM, a third runnable thread mostly waits). Only the meta's rename and the
        directory fsync come after the pickle's fsync.
        """
        finals = [_fs_path(part_path(path, part)) for part in PARTS]  # pkl, state, meta
        directory = os.path.dirname(finals[0])
        if directory:
            os.makedirs(directory, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(finals[2])  # an older checkpoint at this path is invisible from now on
        temps = [_temp_name(final) for final in finals]
        jobs: list[Future[None]] = []
        try:
            try:
                fd = _create(temps[0], b"")
                try:
                    jobs.append(background.submit(_create_synced, temps[2], meta))  # the pickle is on its way
                    _write_streaming(fd, pkl)
                    jobs.append(_fsync_in_background(_create(temps[1], state), temps[1], finals[1]))
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.replace(temps[0], finals[0])
            finally:
                wait(jobs)  # none may still be writing once this returns or cleans up
            for job in jobs:
                job.result()  # their errors
            os.replace(temps[2], finals[2])  # the checkpoint appears, all three files durable
        except BaseException:
            # No checkpoint is left at the path (step 1 removed the old one): nor half of the new one.
            for leftover in (*temps, finals[0], finals[1]):
                with contextlib.suppress(OSError):
                    os.unlink(leftover)
            raise
        _fsync_dir(directory)


def _missing_message(file: str, part: Part) -> str:
    if part == "meta":
        return (
            f"checkpoint meta file {file!r} is missing: no checkpoint there, or its write never finished "
            "(the meta is written last)"
        )
    return f"checkpoint file {file!r} is missing, though its meta exists: the checkpoint is incomplete"
