"""deploy/grafana/graflow-workers.json queries only metrics that workers export, through its data source variable."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from graflow.worker import QueueDepth
from graflow_observability import METRIC_NAMES, WorkerMetrics

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "graflow-workers.json"


class Worker:
    tasks_running = 1
    max_concurrent_tasks = 4


class Queue:
    queue_name = "default"

    def depth(self) -> QueueDepth:
        return QueueDepth(waiting=3, running=1, dead_lettered=2)


def exported() -> tuple[set[str], set[str]]:
    """The metric families and sample names a worker's registry serves (one task observed)."""
    metrics = WorkerMetrics(Worker(), Queue(), "default")
    metrics.task_done("direct", 0.2, None)
    metrics.task_done("direct", 0.1, ValueError("x"))
    families = list(metrics.registry.collect())
    names = {f.name for f in families}
    samples = {s.name for f in families for s in f.samples}
    return names, samples


def queries(node: Any) -> list[str]:
    """Every PromQL string in the dashboard: panel targets and templating queries."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "definition") and isinstance(value, str):
                found.append(value)
            elif key == "query" and isinstance(value, dict) and isinstance(value.get("query"), str):
                found.append(value["query"])
            else:
                found += queries(value)
    elif isinstance(node, list):
        for item in node:
            found += queries(item)
    return found


def test_every_query_uses_exported_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    _, samples = exported()
    used = {name for expr in queries(dashboard) for name in re.findall(r"\bgraflow_[a-z0-9_]+", expr)}
    assert used, "the dashboard queries no graflow metric"
    assert used <= samples, f"not exported by graflow-observability: {sorted(used - samples)}"
    # Every metric a worker exports is on the dashboard.
    families = {n.removesuffix("_bucket").removesuffix("_sum").removesuffix("_count") for n in used}
    assert {n.removesuffix("_total") for n in METRIC_NAMES} <= {n.removesuffix("_total") for n in families}


def test_metric_names_are_what_the_registry_serves() -> None:
    _, samples = exported()
    for name in METRIC_NAMES:
        assert name in samples or f"{name}_count" in samples, name


def test_panels_read_from_the_datasource_variable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert dashboard["panels"]
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
            assert "$queue" in target["expr"], panel["title"]
