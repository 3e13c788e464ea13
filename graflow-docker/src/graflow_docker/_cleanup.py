"""No container outlives the run that started it, even when the run is interrupted (issue #6).

Each handler call removes its container in ``finally``. That is not enough on Ctrl-C when the
task runs in a parallel group: the main thread gets ``KeyboardInterrupt`` and then joins the group's
threads, which sit in ``container.wait()`` until the task ends on its own. So while containers run,
SIGINT first removes them all (from a helper thread: the main thread may be inside a docker-py call),
then does what it did before. ``atexit`` is the last net, for daemon threads killed at exit.
"""

from __future__ import annotations

import atexit
import contextlib
import signal
import threading
from types import FrameType
from typing import Any

from graflow.logs import get_logger

log = get_logger("graflow.docker")

_lock = threading.Lock()
_live: dict[str, Any] = {}
_interrupted: set[str] = set()  # ids removed by remove_all: their tasks did not fail on their own
_hook_installed = False


def track(container: Any) -> None:
    with _lock:
        _live[container.id] = container


def untrack(container: Any) -> bool:
    """Forget ``container``; whether the interrupt cleanup removed it (the run was interrupted)."""
    with _lock:
        _live.pop(container.id, None)
        if container.id in _interrupted:
            _interrupted.discard(container.id)
            return True
        return False


def remove_quietly(container: Any) -> None:
    """``remove(force=True)``; a container already gone is fine, one being removed is waited for
    (``auto_remove`` races us), so that it is really gone when this returns."""
    try:
        container.remove(force=True)
    except Exception as exc:  # NotFound, 409 "removal in progress", a daemon that went away
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status == 409:
            with contextlib.suppress(Exception):  # gone already, or the daemon went away
                container.wait(condition="removed", timeout=10)
        elif status != 404:
            log.warning("docker_container_remove_failed", container=container.id[:12], error=str(exc))


def remove_all() -> None:
    with _lock:
        containers = list(_live.values())
        _interrupted.update(_live)
    for container in containers:
        remove_quietly(container)
    if containers:
        log.info("docker_containers_removed_on_interrupt", count=len(containers))


def _on_sigint(previous: Any) -> Any:
    def handler(signum: int, frame: FrameType | None) -> Any:
        if _live:
            threading.Thread(target=remove_all, name="graflow-docker-cleanup").start()
        return previous(signum, frame)

    return handler


def install_interrupt_hook() -> None:
    """Chain SIGINT once per process (only possible from the main thread; a no-op elsewhere).

    The previous handler still runs (``KeyboardInterrupt`` by default); a process that ignores
    SIGINT or restored the OS default keeps that choice.
    """
    global _hook_installed
    if _hook_installed or threading.current_thread() is not threading.main_thread():
        return
    _hook_installed = True  # only the main thread gets here, so no lock is needed
    previous = signal.getsignal(signal.SIGINT)
    if callable(previous):
        signal.signal(signal.SIGINT, _on_sigint(previous))


atexit.register(remove_all)
