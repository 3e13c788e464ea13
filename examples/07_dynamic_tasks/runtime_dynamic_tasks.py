"""Runtime dynamic tasks (spec section 2): next_task, next_iteration until convergence, goto."""

from graflow import TaskExecutionContext, TaskWrapper, task, workflow


def check_quality() -> float:
    return 0.3


@task(inject_context=True)
def adaptive_processor(context: TaskExecutionContext):
    data_quality = check_quality()
    if data_quality < 0.5:
        context.next_task(TaskWrapper("cleanup", lambda: "cleaned low-quality data"))
    elif data_quality > 0.9:
        context.next_task(TaskWrapper("enhance", lambda: "enhanced"))
    else:
        context.next_task(TaskWrapper("process", lambda: "processed"))


def train_model(params: dict) -> float:
    return min(1.0, params["accuracy"] + 0.1)


@task(inject_context=True)
def optimize_hyperparameters(context: TaskExecutionContext, params=None):
    if params is None:
        params = {"learning_rate": 0.1, "accuracy": 0.5}
    new_accuracy = train_model(params)
    if new_accuracy >= 0.95:
        context.next_task(TaskWrapper("save_model", lambda: f"saved model at accuracy {new_accuracy:.2f}"))
    else:
        params["accuracy"] = new_accuracy
        params["learning_rate"] *= 0.95
        context.next_iteration(params)
    return round(new_accuracy, 2)


@task
def report(optimize_hyperparameters: float) -> str:
    return f"final accuracy {optimize_hyperparameters}"


def main() -> None:
    with workflow("dynamic") as wf:
        adaptive_processor >> optimize_hyperparameters >> report

    result, ctx = wf.execute(ret_context=True)
    print(result, "| cleanup:", ctx.get_result("cleanup"), "| save_model:", ctx.get_result("save_model"))
    print("graph now has:", sorted(ctx.graph.nodes))
    assert ctx.get_result("cleanup") == "cleaned low-quality data"
    assert ctx.cycle_counts["optimize_hyperparameters"] == 5
    assert ctx.get_result("save_model") == "saved model at accuracy 1.00"
    assert result == "final accuracy 1.0"
    assert {"cleanup", "save_model"} <= set(ctx.graph.nodes), "dynamic tasks appear in the graph"


if __name__ == "__main__":
    main()
