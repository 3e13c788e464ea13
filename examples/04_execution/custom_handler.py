"""Pluggable handlers (spec section 4): retry, caching, rate limiting and monitoring, as the spec writes them."""

import time

import structlog

from graflow import TaskHandler, WorkflowEngine, task, workflow

logger = structlog.get_logger("example")


class RetryHandler(TaskHandler):
    def __init__(self, max_retries=3):
        self.max_retries = max_retries

    def execute_task(self, task, context):
        for attempt in range(self.max_retries):
            try:
                result = task.run()
                context.set_result(task.task_id, result)
                return result
            except Exception:
                if attempt == self.max_retries - 1:
                    raise
                logger.warning("retrying", attempt=attempt + 1, of=self.max_retries)


class CachingHandler(TaskHandler):
    def __init__(self):
        self.cache = {}

    def execute_task(self, task, context):
        if task.task_id in self.cache:
            context.set_result(task.task_id, self.cache[task.task_id])
            return
        result = task.run()
        self.cache[task.task_id] = result
        context.set_result(task.task_id, result)


class RateLimitHandler(TaskHandler):
    def __init__(self, min_interval=1.0):
        self.min_interval = min_interval
        self.last_execution = 0

    def execute_task(self, task, context):
        elapsed = time.time() - self.last_execution
        if elapsed < self.min_interval:
            time.sleep(self.min_interval - elapsed)
        result = task.run()
        self.last_execution = time.time()
        context.set_result(task.task_id, result)


class MonitoringHandler(TaskHandler):
    def __init__(self):
        self.metrics = []

    def execute_task(self, task, context):
        start = time.time()
        try:
            result = task.run()
            status = "success"
            context.set_result(task.task_id, result)
        except Exception:
            status = "failed"
            raise
        finally:
            self.metrics.append({"task": task.task_id, "duration": time.time() - start, "status": status})


attempts = {"flaky": 0}
expensive_calls = {"n": 0}


@task(handler="retry")
def flaky() -> str:
    attempts["flaky"] += 1
    if attempts["flaky"] < 3:
        raise ConnectionError("upstream not ready")
    return "ok after 3 attempts"


@task(handler="cache")
def expensive() -> int:
    expensive_calls["n"] += 1
    return 42


@task(handler="ratelimit")
def call_api(expensive: int) -> int:
    return expensive + 1


@task(handler="monitor")
def summarize(flaky: str, call_api: int) -> str:
    return f"{flaky}; api={call_api}"


def main() -> None:
    engine = WorkflowEngine()
    engine.register_handler("retry", RetryHandler(max_retries=3))
    engine.register_handler("cache", CachingHandler())
    engine.register_handler("ratelimit", RateLimitHandler(min_interval=0.05))
    monitor = MonitoringHandler()
    engine.register_handler("monitor", monitor)

    with workflow("handlers") as wf:
        flaky >> expensive >> call_api >> summarize

    first = wf.execute(engine=engine)
    attempts["flaky"] = 0
    second = wf.execute(engine=engine)
    print(first, "|", second, "| monitor:", [m["status"] for m in monitor.metrics])
    assert first == second == "ok after 3 attempts; api=43"
    assert expensive_calls["n"] == 1, "the caching handler served the second run"
    assert [m["status"] for m in monitor.metrics] == ["success", "success"]


if __name__ == "__main__":
    main()
