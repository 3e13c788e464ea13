"""OpenTelemetry spans for a local run: one per run, per parallel group, per task (graflow-observability).

The plugin is passed to the engine with a TracerProvider of our own that keeps spans in memory; in an
application you would configure the global TracerProvider with a real exporter (OTLP, console) and
either pass ``TracingPlugin()`` or let the installed plugin switch itself on (see the package README).
The script prints the span tree and checks it.
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from graflow import ParallelGroup, TaskWrapper, WorkflowEngine, task, workflow
from graflow_observability import TracingPlugin

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
tracer = trace.get_tracer("example", tracer_provider=provider)


@task
def extract() -> list[int]:
    return list(range(10))


def shard(i: int) -> TaskWrapper:
    def run(extract: list[int]) -> int:
        with tracer.start_as_current_span("score-shard"):  # the task's own span: a child of its task span
            return sum(x * i for x in extract)

    return TaskWrapper(f"shard_{i}", run)


def report(shards: dict[str, int]) -> int:
    if len(shards) != 3:
        raise ValueError("a shard is missing")
    return sum(shards.values())


with workflow("traced") as wf:
    shards = ParallelGroup([shard(i) for i in range(3)], name="shards").with_execution("threading")
    extract >> shards >> TaskWrapper("report", report)

engine = WorkflowEngine(plugins=[TracingPlugin(provider)])
with tracer.start_as_current_span("nightly-job"):  # a run joins the trace of whoever started it
    result = wf.execute(engine=engine)
print("result:", result)
assert result == 45 * 3


def show(span: ReadableSpan, children: dict[int | None, list[ReadableSpan]], depth: int = 0) -> None:
    attributes = span.attributes or {}
    label = attributes.get("graflow.task_id") or attributes.get("graflow.group_id") or ""
    took_ms = ((span.end_time or 0) - (span.start_time or 0)) / 1e6
    print(f"{'  ' * depth}{span.name} {label} ({took_ms:.2f} ms, {span.status.status_code.name})")
    for child in sorted(children.get(span.context.span_id, []), key=lambda s: s.start_time or 0):
        show(child, children, depth + 1)


spans = exporter.get_finished_spans()
children: dict[int | None, list[ReadableSpan]] = {}
for span in spans:
    children.setdefault(span.parent.span_id if span.parent else None, []).append(span)
(root,) = children[None]
show(root, children)

by_name = {}
for span in spans:
    by_name.setdefault(span.name, []).append(span)
(run,) = by_name["graflow.run"]
(group,) = by_name["graflow.group"]
assert run.parent is not None and run.parent.span_id == root.context.span_id
assert group.parent is not None and group.parent.span_id == run.context.span_id
tasks = {s.attributes["graflow.task_id"]: s for s in by_name["graflow.task"] if s.attributes}
assert set(tasks) == {"extract", "shard_0", "shard_1", "shard_2", "report"}
assert all(tasks[f"shard_{i}"].parent.span_id == group.context.span_id for i in range(3))  # type: ignore[union-attr]
assert len(by_name["score-shard"]) == 3
assert {s.context.trace_id for s in spans} == {root.context.trace_id}
print(f"ok: {len(spans)} spans in one trace")
