"""One small thread pool that lets checkpoint I/O overlap with hashing (performance issue #7, W6).

``os.fsync`` and BLAKE3 over large buffers both release the GIL, so while the main thread
writes and fsyncs a 1 MB pickle, one worker hashes it (~0.1 ms here) and writes and fsyncs the
meta, and the other fsyncs the state file. Two workers: one local write uses both, and jobs never
wait for other jobs, so a busy pool only queues. The pool is created on first use; idle threads
cost nothing. A forked child starts without it (the parent's threads do not exist there, so
reusing it would hang).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

_pool: ThreadPoolExecutor | None = None
_lock = threading.Lock()


def submit(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> Future[R]:
    """Run ``fn`` on the checkpoint pool and return its future."""
    global _pool
    pool = _pool
    if pool is None:
        with _lock:
            if _pool is None:
                _pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="graflow-checkpoint")
            pool = _pool
    return pool.submit(fn, *args, **kwargs)


def _forget_after_fork() -> None:
    global _pool, _lock
    _pool = None
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)
