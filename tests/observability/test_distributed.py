"""Tracing and metrics across a real redis-server and real ``graflow worker`` processes (started by
their CLI, with graflow-observability installed as it would be on a worker host).

Task functions travel by value (cloudpickle): the workers do not import this module.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import threading
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cloudpickle
import pytest
from graflow_test_redis import wait_until
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from graflow import CoordinationBackend, ParallelGroup, TaskWrapper, WorkflowEngine, workflow
from graflow.exceptions import ParallelGroupError
from graflow_observability import TracingPlugin

cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = [pytest.mark.redis, pytest.mark.slow]

REDIS = CoordinationBackend.REDIS


def worker_spans(folder: Path, pattern: str = "spans-*.jsonl") -> list[dict[str, Any]]:
    return [json.loads(line) for path in sorted(folder.glob(pattern)) for line in path.read_text().splitlines()]


def hex_id(value: int, width: int) -> str:
    return format(value, f"#0{width + 2}x")


def test_worker_task_spans_are_children_of_the_submitters_group_span(
    redis_url: str,
    start_worker: Callable[..., Any],
    tmp_path: Path,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    traced = {"GRAFLOW_OTEL_EXPORTER": f"file:{tmp_path}/spans-{{pid}}.jsonl"}
    start_worker("tw1", "--queue", "traced", "--max-concurrent-tasks", "2", env=traced)
    start_worker("tw2", "--queue", "traced", "--max-concurrent-tasks", "2", env=traced)

    def square(i: int) -> Callable[[], int]:
        def run() -> int:
            return i * i

        return run

    def broken() -> None:
        raise LookupError("no such row")

    with workflow("distributed") as wf:
        members = [TaskWrapper(f"sq{i}", square(i)) for i in range(6)] + [TaskWrapper("broken", broken)]
        group = ParallelGroup(members, name="fleet").with_execution(backend=REDIS, queue_name="traced")
        TaskWrapper("prepare", lambda: 0) >> group.with_policy("best_effort")
    engine = WorkflowEngine(plugins=[TracingPlugin(provider)], config={"redis_url": redis_url})
    context = wf.create_context(engine=engine)
    engine.execute(context)
    assert context.results["fleet"] == {f"sq{i}": i * i for i in range(6)}

    local: list[ReadableSpan] = list(exporter.get_finished_spans())
    (group_span,) = [s for s in local if s.name == "graflow.group"]
    (run_span,) = [s for s in local if s.name == "graflow.run"]
    assert group_span.parent is not None and group_span.parent.span_id == run_span.context.span_id
    remote = [s for s in worker_spans(tmp_path) if s["name"] == "graflow.task"]
    assert sorted(s["attributes"]["graflow.task_id"] for s in remote) == sorted(m.task_id for m in members)
    for span in remote:
        # One trace across processes: the worker's task span hangs under the submitter's group span.
        assert span["context"]["trace_id"] == hex_id(group_span.context.trace_id, 32)
        assert span["parent_id"] == hex_id(group_span.context.span_id, 16)
        assert span["attributes"]["graflow.worker_id"] in ("tw1", "tw2")
        assert span["attributes"]["graflow.handler"] == "direct"
        assert span["attributes"]["graflow.session_id"] == context.session_id
    (failed,) = [s for s in remote if s["attributes"]["graflow.task_id"] == "broken"]
    assert failed["status"]["status_code"] == "ERROR"
    assert failed["events"][0]["attributes"]["exception.type"] == "LookupError"
    # The submitter itself keeps no task span for members it did not run, only their arrival.
    assert not [s for s in local if s.name == "graflow.task" and s.attributes["graflow.task_id"] in ("broken",)]  # type: ignore[index]
    assert len(group_span.events) == len(members)


def metrics_port(worker: Any) -> int:
    """The port a worker started with ``--metrics-port 0`` bound, from its log: a port picked by the
    test and freed for the worker could be taken by another process in between."""
    found = wait_until(
        lambda: re.search(r"metrics_serving .*port=(\d+)", worker.log()), f"{worker.worker_id} serving metrics"
    )
    return int(found.group(1))


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the worker's /metrics, by (sample name, sorted labels)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_worker_metrics_over_http(redis_url: str, start_worker: Callable[..., Any]) -> None:
    port = metrics_port(start_worker("mw1", "--queue", "metered", "--max-concurrent-tasks", "2", "--metrics-port", "0"))

    def fails() -> None:
        raise ValueError("nope")

    with workflow("metered") as wf:
        members = [TaskWrapper(f"ok{i}", lambda: 1) for i in range(5)]
        members += [TaskWrapper(f"bad{i}", fails) for i in range(2)]
        ParallelGroup(members, name="g").with_execution(backend=REDIS, queue_name="metered").with_policy("best_effort")
    wf.execute(engine=WorkflowEngine(config={"redis_url": redis_url}))

    samples = scrape(port)
    task_labels = (("handler", "direct"), ("queue", "metered"))
    queue_labels = (("queue", "metered"),)
    assert samples[("graflow_worker_tasks_processed_total", task_labels)] == 7
    assert samples[("graflow_worker_tasks_failed_total", task_labels)] == 2
    assert samples[("graflow_worker_task_duration_seconds_count", task_labels)] == 7
    assert samples[("graflow_worker_task_duration_seconds_sum", task_labels)] > 0
    buckets = sorted(
        (float(dict(labels)["le"]), value)
        for (name, labels), value in samples.items()
        if name == "graflow_worker_task_duration_seconds_bucket"
    )
    assert buckets[-1] == (float("inf"), 7) and [v for _, v in buckets] == sorted(v for _, v in buckets)
    assert samples[("graflow_worker_tasks_in_flight", queue_labels)] == 0
    assert samples[("graflow_worker_slots", queue_labels)] == 2
    assert samples[("graflow_queue_depth", queue_labels)] == 0
    assert samples[("graflow_queue_running", queue_labels)] == 0
    assert samples[("graflow_queue_dead_lettered_total", queue_labels)] == 0


def test_dead_lettered_tasks_are_counted(redis_url: str, start_worker: Callable[..., Any]) -> None:
    settings = ("--queue", "deadly", "--worker-timeout", "1", "--max-deliveries", "1")
    victim = start_worker("victim", *settings)

    def kill_worker() -> None:
        os._exit(3)  # takes its worker process down: after max_deliveries such deaths, dead-lettered

    with workflow("deadly") as wf:
        ParallelGroup([TaskWrapper("killer", kill_worker)], name="g").with_execution(backend=REDIS, queue_name="deadly")
    config = {"redis_url": redis_url, "worker_timeout": 1, "max_deliveries": 1}
    with pytest.raises(ParallelGroupError, match="dead-lettered"):
        wf.execute(engine=WorkflowEngine(config=config))
    assert victim.wait(timeout=60) == 3

    port = metrics_port(start_worker("observer", *settings, "--metrics-port", "0"))
    samples = scrape(port)
    assert samples[("graflow_queue_dead_lettered_total", (("queue", "deadly"),))] == 1
    assert samples[("graflow_queue_depth", (("queue", "deadly"),))] == 0


def test_a_taken_metrics_port_stops_the_worker_with_exit_code_2(redis_url: str, tmp_path: Path) -> None:
    import socket
    import subprocess

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "graflow.worker.main", "--redis-url", redis_url, "--metrics-port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 2
    assert f"cannot serve metrics on 127.0.0.1:{port}" in proc.stderr and "--metrics-port" in proc.stderr


def test_a_task_given_back_at_sigterm_keeps_the_span_of_its_attempt(
    redis_url: str, start_worker: Callable[..., Any], tmp_path: Path
) -> None:
    """Worker 1 is stopped while the task runs past its graceful shutdown timeout: the delivery is
    given back (worker 2 runs it), and worker 1's attempt still gets its span, marked released."""
    traced = {"GRAFLOW_OTEL_EXPORTER": f"file:{tmp_path}/w1-{{pid}}.jsonl"}
    settings = ("--queue", "handover", "--graceful-shutdown-timeout", "0.5")
    w1 = start_worker("w1", *settings, "--metrics-port", "0", env=traced)
    port = metrics_port(w1)

    def slow() -> str:
        import time

        time.sleep(2.0)
        return "done"

    with workflow("handover") as wf:
        ParallelGroup([TaskWrapper("slow", slow)], name="g").with_execution(backend=REDIS, queue_name="handover")
    outcome: dict[str, Any] = {}

    def submit() -> None:
        engine = WorkflowEngine(config={"redis_url": redis_url})
        context = wf.create_context(engine=engine)
        engine.execute(context)
        outcome["result"] = context.results["g"]

    submitter = threading.Thread(target=submit, daemon=True)
    submitter.start()
    in_flight = ("graflow_worker_tasks_in_flight", (("queue", "handover"),))
    wait_until(lambda: scrape(port).get(in_flight) == 1, "the task running on w1", timeout=30)
    w1.signal(signal.SIGTERM)
    assert w1.wait(timeout=30) == 0
    start_worker("w2", "--queue", "handover")
    submitter.join(timeout=60)
    assert outcome == {"result": {"slow": "done"}}
    (span,) = [s for s in worker_spans(tmp_path, "w1-*.jsonl") if s["name"] == "graflow.task"]
    assert span["attributes"]["graflow.task_id"] == "slow" and span["attributes"]["graflow.status"] == "released"
    assert span["attributes"]["graflow.worker_id"] == "w1"
