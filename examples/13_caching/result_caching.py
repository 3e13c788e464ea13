"""Result caching: a task whose code and inputs match an earlier execution returns the stored result.

The run below uses the default ``file`` store in a temporary directory (config ``cache_dir``; without
it, ``.graflow/cache`` under the current directory). It shows:

1. a second run, even in another process, skips the cached task;
2. a changed input (an upstream result received by parameter name) computes again;
3. ``cache_key=fn`` for an argument that cannot be hashed (a client object);
4. ``graflow.cache.invalidate`` forcing a recomputation;
5. cached members of a parallel group, and the ``graflow_task_cache_hit`` hook a run report can use.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import graflow.cache
from graflow import CoordinationBackend, TaskWrapper, WorkflowEngine, hookimpl, task, workflow

EXECUTIONS: list[str] = []  # which task functions really ran in this process
_lock = threading.Lock()


def ran(name: str) -> None:
    with _lock:
        EXECUTIONS.append(name)


@task
def load_rows() -> list[dict[str, Any]]:
    return [{"city": "Oslo", "temp": 3.5}, {"city": "Lima", "temp": 19.0}, {"city": "Oslo", "temp": 4.5}]


@task(cache=True, cache_ttl=24 * 3600)
def average_by_city(load_rows: list[dict[str, Any]]) -> dict[str, float]:
    """The expensive step: its result is cached for a day, keyed by its code and its input rows."""
    ran("average_by_city")
    sums: dict[str, list[float]] = {}
    for row in load_rows:
        sums.setdefault(row["city"], []).append(row["temp"])
    return {city: sum(temps) / len(temps) for city, temps in sums.items()}


class WeatherClient:
    """Something that cannot be part of a key (a live connection, in real code)."""

    def forecast(self, city: str) -> str:
        return f"sunny in {city}"


def forecast(city: str, client: WeatherClient) -> str:
    ran("forecast")
    return client.forecast(city)


class Hits:
    """A plugin: records cache hits, as a run report would."""

    def __init__(self) -> None:
        self.tasks: list[str] = []

    @hookimpl
    def graflow_task_cache_hit(self, task_id: str) -> None:
        self.tasks.append(task_id)


def pipeline(cache_dir: str, rows: list[dict[str, Any]] | None = None) -> dict[str, float]:
    with workflow("weather") as wf:
        source = TaskWrapper("load_rows", lambda: rows) if rows is not None else load_rows
        source >> average_by_city
    return wf.execute(config={"cache_dir": cache_dir})


def child(cache_dir: str) -> None:
    """Run by main() in a fresh process: prints how often the cached task really ran here."""
    result = pipeline(cache_dir)
    assert result == {"Oslo": 4.0, "Lima": 19.0}
    print(f"child executions: {EXECUTIONS.count('average_by_city')}")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cache_dir = str(Path(tmp) / "cache")

        # 1. The first run computes; the second is served from the cache, in this process and another.
        assert pipeline(cache_dir) == {"Oslo": 4.0, "Lima": 19.0}
        assert pipeline(cache_dir) == {"Oslo": 4.0, "Lima": 19.0}
        assert EXECUTIONS.count("average_by_city") == 1
        proc = subprocess.run(
            [sys.executable, __file__, "--child", cache_dir], capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 0, proc.stderr
        assert "child executions: 0" in proc.stdout, proc.stdout
        print("1. second run and another process: served from the cache")

        # 2. Another upstream result is another key.
        warmer = [{"city": "Oslo", "temp": 10.0}]
        assert pipeline(cache_dir, warmer) == {"Oslo": 10.0}
        assert EXECUTIONS.count("average_by_city") == 2
        print("2. changed input: computed again")

        # 3. cache_key=fn: key on the city, not on the client object (which cannot be hashed).
        def run_forecast() -> str:
            with workflow("forecast") as wf:
                TaskWrapper(
                    "forecast",
                    forecast,
                    cache_key=lambda arguments: arguments["city"],
                    kwargs={"city": "Oslo", "client": WeatherClient()},
                )
            return wf.execute(config={"cache_dir": cache_dir})

        assert run_forecast() == run_forecast() == "sunny in Oslo"
        assert EXECUTIONS.count("forecast") == 1
        print("3. cache_key=fn: one execution for two runs with different clients")

        # 4. Invalidation.
        removed = graflow.cache.invalidate(average_by_city, config={"cache_dir": cache_dir})
        assert removed == 2  # the entries for both inputs
        pipeline(cache_dir)
        assert EXECUTIONS.count("average_by_city") == 3
        print(f"4. invalidate removed {removed} entries: computed again")

        # 5. Cached members of a threaded group; a plugin sees the hits.
        def square(n: int) -> int:
            ran("square")
            return n * n

        hits = Hits()

        def run_group() -> Any:
            with workflow("squares") as wf:
                group = TaskWrapper("sq2", square, cache=True, kwargs={"n": 2}) | TaskWrapper(
                    "sq3", square, cache=True, kwargs={"n": 3}
                )
                group.with_execution(backend=CoordinationBackend.THREADING)
            return wf.execute(config={"cache_dir": cache_dir}, engine=WorkflowEngine(plugins=[hits]))

        assert run_group() == run_group() == {"sq2": 4, "sq3": 9}
        assert EXECUTIONS.count("square") == 2 and sorted(hits.tasks) == ["sq2", "sq3"]
        print(f"5. group members: {EXECUTIONS.count('square')} executions for 2 runs, hits: {sorted(hits.tasks)}")

        graflow.cache.clear(config={"cache_dir": cache_dir})
    print("result caching example: OK")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(sys.argv[2])
    else:
        main()
