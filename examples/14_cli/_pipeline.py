"""A workflow module for ``graflow run`` (examples/14_cli/run_from_cli.py runs it).

Try it yourself:

    graflow run examples/14_cli/_pipeline.py:build --param batches=4 --param region=us --report run.json
    graflow show examples/14_cli/_pipeline.py:build            # the static graph, as Mermaid
    graflow show --report run.json --format png -o run.png     # the executed graph (needs Graphviz)
"""

from __future__ import annotations

from graflow import TaskExecutionContext, TaskWrapper, Workflow, task, workflow


def build(batches: int = 3, region: str = "eu") -> Workflow:
    """A factory: ``--param batches=4`` arrives as an int (annotation), ``region`` as a str."""
    with workflow(f"sales-{region}") as wf:

        @task(inject_context=True)
        def fetch(ctx: TaskExecutionContext) -> int:
            """One batch per iteration: the report counts the iterations."""
            ctx.get_channel().append("batches", ctx.cycle_count * 10)
            if ctx.cycle_count < batches:
                ctx.next_iteration()
            return ctx.cycle_count

        @task(inject_context=True)
        def total(ctx: TaskExecutionContext) -> int:
            return int(sum(ctx.get_channel().get("batches")))

        @task(inject_context=True)
        def count(ctx: TaskExecutionContext) -> int:
            return len(ctx.get_channel().get("batches"))

        @task(inject_context=True)
        def publish(ctx: TaskExecutionContext, total: int, count: int) -> str:
            if total > 50:  # a big day: a task that exists only in this run
                ctx.next_task(TaskWrapper("notify_sales", lambda: f"{region}: big day"))
            return f"{region}: {total} over {count} batches"

        fetch >> (total | count).set_group_name("summaries") >> publish
    return wf
