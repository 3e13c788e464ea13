"""Retries and timeouts per task: a flaky call retried with backoff, an error that is not retried,
a slow attempt cut off by its timeout and retried, a flaky group member, and a loop whose cycles
retries do not consume. Delays are tiny so the script runs in about a second."""

import threading

from graflow import CoordinationBackend, TaskWrapper, WorkflowEngine, hookimpl, task, workflow
from graflow.exceptions import TaskExecutionError, TaskTimeoutError


class RetryLog:
    """A plugin that hears each retry (``graflow_task_retrying``) and each task's attempt count."""

    def __init__(self) -> None:
        self.retries: list[tuple[str, int, float]] = []
        self.attempts: dict[str, int] = {}

    @hookimpl
    def graflow_task_retrying(self, task_id: str, attempt: int, delay_s: float, error: BaseException) -> None:
        print(f"  {task_id}: attempt {attempt} failed ({type(error).__name__}: {error}); again in {delay_s:.3f}s")
        self.retries.append((task_id, attempt, delay_s))

    @hookimpl
    def graflow_task_succeeded(self, task_id: str, attempts: int) -> None:
        self.attempts[task_id] = attempts


def flaky_service(failures: int):
    calls = []

    def call() -> str:
        calls.append(1)
        if len(calls) <= failures:
            raise ConnectionError(f"service down (call {len(calls)})")
        return f"answer after {len(calls)} calls"

    return call


def retried_with_backoff() -> None:
    print("1. a flaky call, retried with exponential backoff")
    log = RetryLog()
    with workflow("backoff") as wf:
        fetch = TaskWrapper(
            "fetch",
            flaky_service(2),
            retries=3,
            retry_delay=0.02,
            backoff=2.0,
            max_delay=0.05,
            jitter=True,  # equal jitter: each delay lies in [planned/2, planned]
            retry_on=(ConnectionError, TimeoutError),
        )

        @task
        def report(fetch: str) -> str:
            return f"report on: {fetch}"

        fetch >> report
    result, ctx = wf.execute(engine=WorkflowEngine(plugins=[log]), ret_context=True)
    print(f"  -> {result}")
    assert result == "report on: answer after 3 calls"
    assert [(t, a) for t, a, _ in log.retries] == [("fetch", 1), ("fetch", 2)]
    assert 0.01 <= log.retries[0][2] <= 0.02 and 0.02 <= log.retries[1][2] <= 0.04
    assert log.attempts == {"fetch": 3, "report": 1}
    assert ctx.cycle_counts["fetch"] == 1  # one execution as far as the run is concerned


def not_retried() -> None:
    print("2. an error outside retry_on fails at once")
    calls = []

    def parse() -> None:
        calls.append(1)
        raise ValueError("malformed input: retrying cannot fix it")

    with workflow("no_retry") as wf:
        TaskWrapper("parse", parse, retries=5, retry_delay=0.01, retry_on=(ConnectionError,))
    try:
        wf.execute()
        raise AssertionError("parse must fail")
    except TaskExecutionError as e:
        print(f"  -> {type(e.original).__name__} after {len(calls)} attempt")
        assert isinstance(e.original, ValueError) and len(calls) == 1


def timed_out_then_retried() -> None:
    print("3. a hung attempt is cut off by its timeout and retried")
    release = threading.Event()
    attempts = []

    def sometimes_hangs() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            release.wait(30)  # hangs; the run stops waiting after 0.2 s (the thread itself runs on)
        return "finished"

    log = RetryLog()
    with workflow("timeouts") as wf:
        TaskWrapper("download", sometimes_hangs, timeout=0.2, retries=1, retry_delay=0)
    result = wf.execute(engine=WorkflowEngine(plugins=[log]))
    release.set()  # let the abandoned first attempt end
    print(f"  -> {result}")
    assert result == "finished" and log.attempts == {"download": 2}

    with workflow("always_slow") as wf:
        TaskWrapper("stuck", lambda: threading.Event().wait(0.6), timeout=0.1)
    try:
        wf.execute()
        raise AssertionError("stuck must time out")
    except TaskExecutionError as e:
        assert isinstance(e.original, TaskTimeoutError)
        print(f"  -> {type(e.original).__name__}: {str(e.original)[:60]}...")


def flaky_group_member() -> None:
    print("4. a group's policy sees only the final outcome of a retried member")
    log = RetryLog()
    with workflow("group") as wf:
        (
            TaskWrapper("steady", lambda: "steady")
            | TaskWrapper("shaky", flaky_service(1), retries=2, retry_delay=0.01)
        ).with_execution(CoordinationBackend.THREADING).set_group_name("sources")  # strict policy
    _, ctx = wf.execute(engine=WorkflowEngine(plugins=[log]), ret_context=True)
    print(f"  -> {ctx.get_result('sources')}")
    assert ctx.get_result("sources") == {"steady": "steady", "shaky": "answer after 2 calls"}
    assert log.attempts["shaky"] == 2


def loop_with_retries() -> None:
    print("5. retries do not use up a loop's max_cycles")
    failed_in = set()

    @task(inject_context=True, max_cycles=3, retries=1, retry_delay=0)
    def poll(context, n: int = 0) -> int:
        if context.cycle_count not in failed_in:  # the first attempt of every cycle fails
            failed_in.add(context.cycle_count)
            raise ConnectionError("blip")
        if n < 2:
            context.next_iteration(n + 1)
        return n

    with workflow("loop") as wf:
        wf.add(poll)
    result, ctx = wf.execute(ret_context=True)
    print(f"  -> {ctx.cycle_counts['poll']} cycles, 6 attempts, result {result}")
    assert result == 2 and ctx.cycle_counts["poll"] == 3 and failed_in == {1, 2, 3}


def main() -> None:
    retried_with_backoff()
    not_retried()
    timed_out_then_retried()
    flaky_group_member()
    loop_with_retries()
    print("all checks passed")


if __name__ == "__main__":
    main()
