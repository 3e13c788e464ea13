"""State machines (spec section 3): state in the channel, each transition a next_iteration()."""

from graflow import TaskWrapper, task, workflow

threshold = 3
log: list[str] = []


def finalize_handler() -> str:
    return "finalized"


@task(inject_context=True)
def state_controller(context):
    channel = context.get_channel()
    current_state = channel.get("state", default="START")
    data = channel.get("data", default=0)
    log.append(current_state)
    if current_state == "START":
        channel.set("state", "PROCESSING")
        channel.set("data", data + 1)
        context.next_iteration()
    elif current_state == "PROCESSING":
        if data < threshold:
            channel.set("data", data + 1)
            context.next_iteration()
        else:
            channel.set("state", "FINALIZING")
            context.next_iteration()
    elif current_state == "FINALIZING":
        channel.set("state", "END")
        context.next_task(TaskWrapper("end_state", finalize_handler))
    return {"state": current_state, "data": data}


@task(inject_context=True)
def order_processor(context):
    channel = context.get_channel()
    order_state = channel.get("order_state", "NEW")
    transitions = {"NEW": "VALIDATED", "VALIDATED": "RESERVED", "RESERVED": "PAID", "PAID": "SHIPPED"}
    channel.append("order_history", order_state)
    if order_state in transitions:
        channel.set("order_state", transitions[order_state])
        if order_state == "PAID":
            context.next_task(TaskWrapper("notify", lambda: "customer notified"))
        else:
            context.next_iteration()
    return order_state


def main() -> None:
    with workflow("fsm") as wf:
        wf.add(state_controller)
    result, ctx = wf.execute("state_controller", max_steps=100, ret_context=True)
    print("states visited:", log, "| end:", ctx.get_result("end_state"))
    assert log == ["START", "PROCESSING", "PROCESSING", "PROCESSING", "FINALIZING"]
    assert ctx.channel.get("state") == "END" and result == "finalized"

    with workflow("orders") as wf:
        wf.add(order_processor)
    result, ctx = wf.execute(order_processor, ret_context=True)
    print("order history:", ctx.channel.get("order_history"), "|", result)
    assert ctx.channel.get("order_history") == ["NEW", "VALIDATED", "RESERVED", "PAID"]
    assert ctx.channel.get("order_state") == "SHIPPED" and result == "customer notified"


if __name__ == "__main__":
    main()
