"""Long-running training with a checkpoint every 10 epochs (spec section 9, use case 1).

The first run crashes at epoch 47; the run resumes from the epoch-40 checkpoint, trains epochs 41-60
and ends with exactly the model of a run that never crashed.

Tasks defined in a script (``__main__``) are stored by value, globals included; the crash is
simulated with an environment variable because a task reads it when it runs, not when it is saved.
"""

import os
import tempfile

from graflow import TaskExecutionContext, WorkflowEngine, task, workflow
from graflow.core.checkpoint import CheckpointManager
from graflow.exceptions import TaskExecutionError

MAX_EPOCHS = 60
CRASH_ENV = "EXAMPLE_TRAINING_CRASH_AT_EPOCH"


def train_epoch(model: dict, epoch: int) -> dict:
    weights = [round(w * 0.9 + 0.01 * epoch * (i + 1), 9) for i, w in enumerate(model["weights"])]
    return {"weights": weights, "loss": round(sum(abs(w) for w in weights) / (epoch + 1), 9)}


@task(inject_context=True)
def train_model(context: TaskExecutionContext):
    channel = context.get_channel()
    epoch = channel.get("epoch", 0)
    model = channel.get("model", {"weights": [1.0, -1.0, 0.5], "loss": 1.0})
    if os.environ.get(CRASH_ENV) == str(epoch + 1):
        raise RuntimeError(f"the GPU fell off the bus during epoch {epoch + 1}")

    model = train_epoch(model, epoch + 1)
    channel.set("model", model)
    channel.set("epoch", epoch + 1)

    if (epoch + 1) % 10 == 0:  # checkpoint every 10 epochs
        context.checkpoint(metadata={"epoch": epoch + 1, "loss": model["loss"]})

    if epoch + 1 < MAX_EPOCHS:
        context.next_iteration()
    else:
        return "Training complete"


def build():
    with workflow("training") as wf:
        wf.add(train_model)
    return wf


def main() -> None:
    with tempfile.TemporaryDirectory() as checkpoints:
        config = {"checkpoint_dir": checkpoints}
        reference, reference_ctx = build().execute(ret_context=True, config=config)

        os.environ[CRASH_ENV] = "47"
        wf = build()
        try:
            wf.execute(config=config)
            raise AssertionError("the run was supposed to crash at epoch 47")
        except TaskExecutionError as exc:
            print("run failed:", exc)
        del os.environ[CRASH_ENV]

        crashed = wf.last_context
        assert crashed is not None and crashed.get_channel().get("epoch") == 46
        path = crashed.last_checkpoint_path  # the newest checkpoint of the failed run
        saved = CheckpointManager.list_checkpoints(
            CheckpointManager.default_location(crashed.session_id, crashed.config)
        )
        assert [m.user_metadata["epoch"] for m in saved] == [10, 20, 30, 40]
        assert path == saved[-1].path

        context, metadata = CheckpointManager.resume_from_checkpoint(path)
        epoch = metadata.user_metadata["epoch"]
        print(f"Resuming session {metadata.session_id} at step {metadata.steps}, epoch {epoch}")
        assert metadata.user_metadata["epoch"] == 40
        assert context.get_channel().get("epoch") == 40  # training continues from epoch 41

        result = WorkflowEngine().execute(context)
        print(result, "| final loss", context.get_channel().get("model")["loss"])
        assert result == reference == "Training complete"
        assert context.get_channel().get("model") == reference_ctx.get_channel().get("model")
        assert context.get_channel().get("epoch") == 60
        assert context.cycle_counts == reference_ctx.cycle_counts == {"train_model": 60}
        assert context.steps == reference_ctx.steps

        after = CheckpointManager.list_checkpoints(
            CheckpointManager.default_location(crashed.session_id, crashed.config)
        )
        assert [m.user_metadata["epoch"] for m in after] == [10, 20, 30, 40, 50, 60]
        CheckpointManager.prune(CheckpointManager.default_location(crashed.session_id, crashed.config), keep_last=2)
        kept = CheckpointManager.list_checkpoints(
            CheckpointManager.default_location(crashed.session_id, crashed.config)
        )
        assert [m.user_metadata["epoch"] for m in kept] == [50, 60]


if __name__ == "__main__":
    main()
