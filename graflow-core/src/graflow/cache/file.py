"""FileCacheStore (``cache_store="file"``, the default): one file per entry under a directory.

Layout: ``<dir>/<task>/<digest>.entry``, the task id escaped into a safe directory name. A file is
a header line (magic, then JSON: expiry time, size and BLAKE3 digest of the body) and the body.
Writes go to a temporary file in the same directory, then ``os.replace``: readers in any process see
the old entry or the new one, never half of one, and concurrent writers of one key leave one whole
entry (the last). An entry that is truncated, garbled or fails its digest is a miss with a
``cache_entry_corrupted`` warning, and is removed; it never crashes a run.

The directory: config ``cache_dir``, else ``GRAFLOW_CACHE_DIR``, else ``.graflow/cache`` under the
current directory (README, "Result caching", says why).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from blake3 import blake3

from graflow.cache.base import CacheKey, CacheStore
from graflow.logs import get_logger

log = get_logger("graflow.cache")

CACHE_DIR_ENV = "GRAFLOW_CACHE_DIR"
DEFAULT_DIR = Path(".graflow") / "cache"
MAGIC = b"GRAFLOW-CACHE-1 "
SUFFIX = ".entry"
TMP_PREFIX = ".tmp-"
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def default_cache_dir(config: Mapping[str, Any] | None = None) -> Path:
    """Config ``cache_dir``, else ``$GRAFLOW_CACHE_DIR``, else ``./.graflow/cache``; made absolute."""
    raw = (config or {}).get("cache_dir") or os.environ.get(CACHE_DIR_ENV) or DEFAULT_DIR
    return Path(raw).expanduser().absolute()


def task_dir_name(task_id: str) -> str:
    """A directory name for ``task_id`` that is safe on every filesystem and distinct per id."""
    escaped = "".join(c if c in _SAFE else "".join(f"%{b:02X}" for b in c.encode("utf-8", "surrogatepass"))
                      for c in task_id)  # fmt: skip
    if len(escaped) > 100:
        escaped = f"{escaped[:60]}~{blake3(task_id.encode('utf-8', 'surrogatepass')).hexdigest()[:24]}"
    return escaped


class FileCacheStore(CacheStore):
    """Entries as files under ``directory``. ``clock`` returns Unix time (expiry times are stored
    as wall-clock times, since other processes read them); tests inject their own."""

    def __init__(self, directory: str | os.PathLike[str], clock: Callable[[], float] = time.time) -> None:
        self.directory = Path(directory).expanduser().absolute()
        self.clock = clock

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> FileCacheStore:
        return cls(default_cache_dir(config))

    def shipping_config(self) -> dict[str, Any]:
        return {"cache_dir": str(self.directory)}

    def path(self, key: CacheKey) -> Path:
        return self.directory / task_dir_name(key.task_id) / f"{key.digest}{SUFFIX}"

    def get(self, key: CacheKey) -> bytes | None:
        path = self.path(key)
        try:
            raw = path.read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None
        try:
            expires, body = self._parse(raw)
        except ValueError as exc:
            log.warning("cache_entry_corrupted", path=str(path), task_id=key.task_id, reason=str(exc))
            self._remove(path)
            return None
        if expires is not None and self.clock() >= expires:
            self._remove(path)  # a concurrent fresh write lost this way only costs a miss
            return None
        return body

    @staticmethod
    def _parse(raw: bytes) -> tuple[float | None, bytes]:
        if not raw.startswith(MAGIC):
            raise ValueError("not a Graflow cache entry (bad magic)")
        end = raw.find(b"\n")
        if end < 0:
            raise ValueError("truncated header")
        try:
            header = json.loads(raw[len(MAGIC) : end])
            size, digest, expires = int(header["size"]), str(header["blake3"]), header["expires_at"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"unreadable header ({type(exc).__name__}: {exc})") from None
        body = raw[end + 1 :]
        if len(body) != size:
            raise ValueError(f"body is {len(body)} bytes, header says {size}: truncated or appended to")
        if blake3(body).hexdigest() != digest:
            raise ValueError("body does not match its digest")
        return (None if expires is None else float(expires)), body

    def set(self, key: CacheKey, data: bytes, ttl: float | None) -> None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        header = {
            "expires_at": None if ttl is None else self.clock() + ttl,
            "size": len(data),
            "blake3": blake3(data).hexdigest(),
            "task_id": key.task_id,
        }
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TMP_PREFIX)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(MAGIC + json.dumps(header, separators=(",", ":")).encode() + b"\n")
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            self._remove(Path(tmp))
            raise

    def delete(self, key: CacheKey) -> bool:
        return self._remove(self.path(key))

    def clear(self, task_id: str | None = None) -> int:
        """Removes entry files and leftover temporary files only: nothing else in the directory."""
        if not self.directory.is_dir():
            return 0
        dirs = [self.directory / task_dir_name(task_id)] if task_id is not None else list(self.directory.iterdir())
        removed = 0
        for folder in dirs:
            if not folder.is_dir():
                continue
            for entry in folder.iterdir():
                if entry.name.endswith(SUFFIX):
                    removed += self._remove(entry)
                elif entry.name.startswith(TMP_PREFIX):
                    self._remove(entry)
            with contextlib.suppress(OSError):  # not empty: someone else's file, or a new entry
                folder.rmdir()
        return removed

    @staticmethod
    def _remove(path: Path) -> bool:
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            log.warning("cache_entry_not_removed", path=str(path), error=f"{type(exc).__name__}: {exc}")
            return False
        return True
