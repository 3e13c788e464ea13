"""Parallel group error policies (spec section 5): strict, best effort, at least N, critical, custom."""

from graflow import ErrorHandlingPolicy, ParallelGroupError, TaskWrapper, task, workflow


def source(name: str, ok: bool) -> TaskWrapper:
    def fetch() -> str:
        if not ok:
            raise ConnectionError(f"{name} unavailable")
        return f"data from {name}"

    return TaskWrapper(name, fetch)


class MajorityPolicy(ErrorHandlingPolicy):
    def should_fail(self, failed_tasks, successful_tasks):
        return len(failed_tasks) > len(successful_tasks)


def run(policy) -> dict:
    with workflow("sources") as wf:
        group = source("task_a", True) | source("task_b", False) | source("task_c", True)
        if policy is not None:
            group = group.with_policy(policy)

        @task
        def aggregate(**kwargs) -> int:
            return 0

        group.set_group_name("fetch") >> aggregate
    _, ctx = wf.execute(ret_context=True)
    return ctx.get_result("fetch")


def main() -> None:
    try:
        run(None)
        raise AssertionError("strict mode must fail")
    except ParallelGroupError as e:
        print(f"strict: group={e.group_id} failed={e.failed_tasks} succeeded={e.successful_tasks}")
        assert e.group_id == "fetch" and e.failed_tasks == [("task_b", "ConnectionError: task_b unavailable")]
        assert sorted(e.successful_tasks) == ["task_a", "task_c"]
        assert isinstance(e.errors["task_b"], ConnectionError)

    for policy in (
        ErrorHandlingPolicy.BEST_EFFORT,
        ErrorHandlingPolicy.AT_LEAST_N(n=2),
        ErrorHandlingPolicy.CRITICAL_TASKS(["task_a"]),
        MajorityPolicy(),
    ):
        results = run(policy)
        print(f"{policy!r}: {results}")
        assert sorted(results) == ["task_a", "task_c"]

    try:
        run(ErrorHandlingPolicy.CRITICAL_TASKS(["task_b"]))
        raise AssertionError("a failed critical task must fail the group")
    except ParallelGroupError as e:
        print("critical task_b failed:", e)


if __name__ == "__main__":
    main()
