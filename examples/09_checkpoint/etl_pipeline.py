"""A multi-stage ETL pipeline that checkpoints after its expensive transform (spec section 9, use case 2).

The load step fails (the warehouse is down); resuming from the transform checkpoint runs only load.
"""

import os
import tempfile

from graflow import TaskExecutionContext, WorkflowEngine, task, workflow
from graflow.core.checkpoint import CheckpointManager
from graflow.exceptions import TaskExecutionError

OUTAGE_ENV = "EXAMPLE_WAREHOUSE_DOWN"


@task(inject_context=True)
def extract(context: TaskExecutionContext):
    context.get_channel().append("ran", "extract")
    return [{"id": i, "amount": i * 10 - 15} for i in range(6)]


@task(inject_context=True)
def validate(context: TaskExecutionContext, extract):
    context.get_channel().append("ran", "validate")
    return [row for row in extract if row["amount"] >= 0]


@task(inject_context=True)
def transform(context: TaskExecutionContext, validate):
    context.get_channel().append("ran", "transform")
    result = [{**row, "amount_cents": row["amount"] * 100} for row in validate]  # the expensive part
    context.checkpoint(metadata={"stage": "transformed", "rows": len(result)})
    return result


@task(inject_context=True)
def load(context: TaskExecutionContext, transform):
    if os.environ.get(OUTAGE_ENV):
        raise ConnectionError("warehouse unreachable")
    context.get_channel().append("ran", "load")
    return {"loaded": len(transform), "total_cents": sum(r["amount_cents"] for r in transform)}


def build():
    with workflow("etl_pipeline") as wf:
        extract >> validate >> transform >> load
    return wf


def main() -> None:
    with tempfile.TemporaryDirectory() as checkpoints:
        expected = build().execute(config={"checkpoint_dir": checkpoints})

        os.environ[OUTAGE_ENV] = "1"
        wf = build()
        try:
            wf.execute(config={"checkpoint_dir": checkpoints})
            raise AssertionError("load was supposed to fail")
        except TaskExecutionError as exc:
            print("pipeline failed:", exc)
        del os.environ[OUTAGE_ENV]
        assert wf.last_context is not None
        path = wf.last_context.last_checkpoint_path

        context, metadata = CheckpointManager.resume_from_checkpoint(path)
        print(
            "resuming after stage",
            metadata.user_metadata["stage"],
            "with",
            metadata.user_metadata["rows"],
            "rows",
        )
        assert [spec.task_id for spec in context.queue.pending()] == ["load"]
        assert context.completed == {"extract", "validate", "transform"}

        result = WorkflowEngine().execute(context)  # only runs the load step
        print("loaded:", result)
        assert result == expected == {"loaded": 4, "total_cents": 8000}
        assert context.get_channel().get("ran") == ["extract", "validate", "transform", "load"]


if __name__ == "__main__":
    main()
