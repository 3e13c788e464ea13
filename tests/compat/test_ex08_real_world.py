"""Compatibility with upstream Graflow 0.2's ``examples/08_real_world`` (GraflowAI/graflow).

Follows ``batch_processing.py``: initialize → partition → process → aggregate → report, every step
an ``inject_context`` task sharing state through the channel. Runs unchanged. (The folder's other
scripts, ``data_pipeline.py``, ``ml_training.py`` and ``sales_analysis.py``, use the same
sequential-pipeline and channel API and are not ported separately.)
"""

from __future__ import annotations

from graflow.core.context import TaskExecutionContext
from graflow.core.decorators import task
from graflow.core.workflow import workflow


def test_batch_processing_pipeline_through_the_channel() -> None:
    total_items, batch_size = 1000, 100
    num_batches = total_items // batch_size
    with workflow("batch_processing") as ctx:

        @task(inject_context=True)
        def initialize(context: TaskExecutionContext) -> None:
            channel = context.get_channel()
            channel.set("total_items", total_items)
            channel.set("num_batches", num_batches)

        @task(inject_context=True)
        def partition_data(context: TaskExecutionContext) -> None:
            batches = [
                {"batch_id": i, "start": i * batch_size, "end": i * batch_size + batch_size - 1, "size": batch_size}
                for i in range(num_batches)
            ]
            context.get_channel().set("batches", batches)

        @task(inject_context=True)
        def process_batches(context: TaskExecutionContext) -> None:
            channel = context.get_channel()
            results = []
            for batch in channel.get("batches"):
                success = int(batch["size"] * 0.98)
                results.append({"batch_id": batch["batch_id"], "processed": batch["size"], "success": success})
            channel.set("batch_results", results)

        @task(inject_context=True)
        def aggregate_results(context: TaskExecutionContext) -> None:
            channel = context.get_channel()
            results = channel.get("batch_results")
            channel.set("total_processed", sum(r["processed"] for r in results))
            channel.set("total_success", sum(r["success"] for r in results))

        @task(inject_context=True)
        def generate_report(context: TaskExecutionContext) -> dict[str, float]:
            channel = context.get_channel()
            return {
                "total": channel.get("total_items"),
                "processed": channel.get("total_processed"),
                "success_rate": channel.get("total_success") / channel.get("total_processed") * 100,
            }

        initialize >> partition_data >> process_batches >> aggregate_results >> generate_report
        report = ctx.execute("initialize")
    assert report == {"total": 1000, "processed": 1000, "success_rate": 98.0}
