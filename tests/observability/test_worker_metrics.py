"""Worker metrics in one process, with in-memory work sources: TaskWorkers built in code."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from graflow_test_redis import wait_until
from memory_work_source import CountingMemorySource, MemorySource

from graflow import TaskWrapper, hookimpl
from graflow.core import remote
from graflow.exceptions import GraflowError
from graflow.plugins import manager
from graflow.worker import TaskWorker, WorkItem
from graflow_observability.metrics import metrics_address


def item(i: int) -> WorkItem:
    request = remote.RemoteRequest(session_id="s", task=TaskWrapper(f"t{i}", lambda: 1), cycle=1, kwargs={})
    return WorkItem(str(i), f"t{i}", 1, remote.dumps_request(request))


SERVE = {"metrics_port": 0, "metrics_addr": "127.0.0.1"}


@pytest.fixture(autouse=True)
def installed_plugins(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Workers built in code use the installed plugins; here the metrics one only."""
    monkeypatch.setenv("GRAFLOW_LOAD_PLUGINS", "prometheus")
    manager.reset_default_host()
    yield
    manager.reset_default_host()


def scrape(address: tuple[str, int] | None) -> str:
    assert address is not None
    with urllib.request.urlopen(f"http://{address[0]}:{address[1]}/metrics", timeout=10) as response:
        return str(response.read().decode())


def run(worker: TaskWorker) -> threading.Thread:
    thread = threading.Thread(target=worker.start, daemon=True)
    thread.start()
    return thread


def wait_for(source: MemorySource, count: int) -> None:
    with source.cond:
        assert source.cond.wait_for(lambda: len(source.completed) >= count, timeout=30)


def serving(worker: TaskWorker) -> tuple[str, int]:
    """The worker's metrics address, once its thread started the server (before taking work)."""
    address: tuple[str, int] = wait_until(lambda: metrics_address(worker), "the metrics endpoint", timeout=30)
    return address


def test_a_work_source_without_depth_feeds_a_worker_that_serves_metrics() -> None:
    source = MemorySource([item(i) for i in range(3)])
    worker = TaskWorker(source, block_s=0.05, options=SERVE)
    thread = run(worker)
    try:
        address = serving(worker)
        wait_for(source, 3)
        text = scrape(address)
    finally:
        worker.stop()
        thread.join(10)
    assert 'graflow_worker_slots{queue="mem"} 4.0' in text
    assert "graflow_queue_depth" not in text and "graflow_queue_running" not in text  # the backend cannot say


def test_two_workers_of_one_process_keep_their_metrics_apart() -> None:
    """Default worker ids are host-pid, the same for every worker of a process."""
    served, quiet = CountingMemorySource(), CountingMemorySource([item(i) for i in range(5)])
    a = TaskWorker(served, block_s=0.05, options=SERVE)
    b = TaskWorker(quiet, block_s=0.05)  # asks for no metrics
    assert a.worker_id == b.worker_id
    thread_a = run(a)
    try:
        address = serving(a)
        thread_b = run(b)
        wait_for(quiet, 5)
        b.stop()
        thread_b.join(10)
        text = scrape(address)  # b stopping did not close a's endpoint
        assert "graflow_worker_tasks_processed_total{" not in text  # b's deliveries are not a's
        assert 'graflow_queue_depth{queue="mem"} 0.0' in text
    finally:
        a.stop()
        thread_a.join(10)


def test_a_later_failing_worker_started_hook_leaves_no_metrics_server() -> None:
    seen: list[tuple[str, int] | None] = []

    class Strict:
        @staticmethod
        @hookimpl(trylast=True)  # after the metrics plugin started its server
        def graflow_worker_started(worker: Any) -> None:
            seen.append(metrics_address(worker))
            raise GraflowError("bad setting")

    worker = TaskWorker(MemorySource(), block_s=0.05, options=SERVE, plugins=[Strict])
    with pytest.raises(GraflowError, match="bad setting"):
        worker.start()
    (address,) = seen
    assert address is not None and metrics_address(worker) is None
    with pytest.raises(urllib.error.URLError):
        scrape(address)
