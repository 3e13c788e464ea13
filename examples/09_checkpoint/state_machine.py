"""An order state machine with a checkpoint at each transition (spec section 9, use case 4).

Shipping fails once; resuming from the newest checkpoint (state PAID) ships the order without
charging the customer a second time.
"""

import os
import tempfile

from graflow import TaskExecutionContext, WorkflowEngine, task, workflow
from graflow.core.checkpoint import CheckpointManager
from graflow.exceptions import TaskExecutionError

CARRIER_DOWN_ENV = "EXAMPLE_CARRIER_DOWN"


def validate_order(channel) -> None:
    channel.append("events", "validated")


def process_payment(channel) -> None:
    channel.append("charges", 129.90)
    channel.append("events", "paid")


def ship_order(channel) -> None:
    if os.environ.get(CARRIER_DOWN_ENV):
        raise ConnectionError("carrier API unavailable")
    channel.append("events", "shipped")


@task(inject_context=True)
def order_state_machine(context: TaskExecutionContext):
    channel = context.get_channel()
    state = channel.get("order_state", "NEW")

    if state == "NEW":
        validate_order(channel)
        channel.set("order_state", "VALIDATED")
        context.checkpoint(metadata={"state": "VALIDATED"})
        context.next_iteration()

    elif state == "VALIDATED":
        process_payment(channel)
        channel.set("order_state", "PAID")
        context.checkpoint(metadata={"state": "PAID"})
        context.next_iteration()

    elif state == "PAID":
        ship_order(channel)
        return "ORDER_COMPLETE"


def build():
    with workflow("order") as wf:
        wf.add(order_state_machine)
    return wf


def main() -> None:
    with tempfile.TemporaryDirectory() as checkpoints:
        os.environ[CARRIER_DOWN_ENV] = "1"
        wf = build()
        try:
            wf.execute(config={"checkpoint_dir": checkpoints})
            raise AssertionError("shipping was supposed to fail")
        except TaskExecutionError as exc:
            print("order stuck:", exc)
        del os.environ[CARRIER_DOWN_ENV]

        crashed = wf.last_context
        assert crashed is not None
        location = CheckpointManager.default_location(crashed.session_id, crashed.config)
        transitions = CheckpointManager.list_checkpoints(location)
        assert [m.user_metadata["state"] for m in transitions] == ["VALIDATED", "PAID"]

        context, metadata = CheckpointManager.resume_from_checkpoint(transitions[-1].path)
        print("resuming in state", metadata.user_metadata["state"])
        result = WorkflowEngine().execute(context)
        print(result, "| events:", context.get_channel().get("events"))
        assert result == "ORDER_COMPLETE"
        assert context.get_channel().get("events") == ["validated", "paid", "shipped"]
        assert context.get_channel().get("charges") == [129.90], "the customer is charged once"

        # Older transitions are no longer needed once the order is complete.
        assert CheckpointManager.prune(location, keep_last=1) == [transitions[0].path]


if __name__ == "__main__":
    main()
