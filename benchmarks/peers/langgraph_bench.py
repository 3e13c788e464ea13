"""LangGraph side of the peer benchmark (run with benchmarks/.venvs/langgraph/bin/python).

Each workload is written the way the LangGraph docs teach it: a ``StateGraph``
with one node per task, compiled without a checkpointer and run with the
synchronous ``invoke``, whose parallel nodes share a thread pool.

- W1: 1,000 nodes chained by ``add_edge``. The clock covers ``invoke`` of
  the compiled graph (compiled once, invoked after a warm-up invoke);
  building + compiling is timed separately into ``extra["build_runs"]``.
- W2: a static fan-out: ``src`` has an edge to each of 1,000 nodes and
  ``add_edge([...1,000 names], "sink")`` joins them; timed like W1. The
  map-reduce idiom (``Send`` to one node 1,000 times) is timed too and
  reported in ``extra["send_variant_runs"]``.
- W3: one node with a conditional edge back to itself, ``recursion_limit``
  raised to n + 1 (each iteration is one superstep).
- W5L: ``Send`` 200 sleeps of 20 ms with ``max_concurrency=4`` (4 threads).
- W4/W5 are skipped: open-source LangGraph has no broker-backed worker pool.
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable
from typing import Any, TypedDict

from common import (
    W1_CHAIN,
    W2_WIDTH,
    W5_SLOTS,
    W5_TASK_SECONDS,
    W5_TASKS,
    Result,
    measure_w3,
    result,
    run_main,
    stopwatch,
    timed_runs,
    versions,
)
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Send

PEER = "langgraph"


class State(TypedDict):
    i: int


class Counter:
    """Counts node executions so every run proves it did all the work."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def reset(self) -> None:
        self.value = 0

    def noop(self, _state: State) -> None:
        with self._lock:
            self.value += 1

    def expect(self, n: int) -> None:
        if self.value != n:
            raise AssertionError(f"expected {n} node executions, saw {self.value}")


def _info() -> dict[str, Any]:
    return {"versions": versions("langgraph", "langchain-core")}


def _invoker(app: CompiledStateGraph[Any, Any, Any, Any], counter: Counter, expected: int) -> Callable[[], float]:
    """A timed ``invoke`` of a compiled graph, checked for the number of node runs."""

    def once() -> float:
        counter.reset()
        elapsed = stopwatch(lambda: app.invoke({"i": 0}))
        counter.expect(expected)
        return elapsed

    return once


def _chain(counter: Counter) -> CompiledStateGraph[Any, Any, Any, Any]:
    graph = StateGraph(State)
    previous = START
    for k in range(W1_CHAIN):
        name = f"task_{k}"
        graph.add_node(name, counter.noop)
        graph.add_edge(previous, name)
        previous = name
    graph.add_edge(previous, END)
    return graph.compile()


def w1(args: argparse.Namespace) -> Result:
    counter = Counter()
    runs = timed_runs(_invoker(_chain(counter), counter, W1_CHAIN), args.repeat, not args.no_warmup)
    build_runs = [stopwatch(lambda: _chain(counter)) for _ in range(args.repeat)]
    return result(
        PEER,
        "W1",
        "s",
        runs,
        {
            **_info(),
            "build_runs": build_runs,
            "expressed_as": "1,000 nodes chained by add_edge; invoke of the compiled graph timed",
        },
    )


def _static_fan_out(counter: Counter) -> CompiledStateGraph[Any, Any, Any, Any]:
    graph = StateGraph(State)
    graph.add_node("src", counter.noop)
    graph.add_node("sink", counter.noop)
    graph.add_edge(START, "src")
    names = [f"task_{k}" for k in range(W2_WIDTH)]
    for name in names:
        graph.add_node(name, counter.noop)
        graph.add_edge("src", name)
    graph.add_edge(names, "sink")  # a join: sink waits for all of them
    graph.add_edge("sink", END)
    return graph.compile()


def _send_fan_out(
    counter: Counter, width: int, task: Callable[[State], None]
) -> CompiledStateGraph[Any, Any, Any, Any]:
    graph = StateGraph(State)
    graph.add_node("src", counter.noop)
    graph.add_node("task", task)
    graph.add_node("sink", counter.noop)
    graph.add_edge(START, "src")
    graph.add_conditional_edges("src", lambda _s: [Send("task", {"i": k}) for k in range(width)], ["task"])
    graph.add_edge("task", "sink")
    graph.add_edge("sink", END)
    return graph.compile()


def w2(args: argparse.Namespace) -> Result:
    counter = Counter()
    expected = W2_WIDTH + 2
    warmup = not args.no_warmup
    runs = timed_runs(_invoker(_static_fan_out(counter), counter, expected), args.repeat, warmup)
    build_runs = [stopwatch(lambda: _static_fan_out(counter)) for _ in range(args.repeat)]
    send_app = _send_fan_out(counter, W2_WIDTH, counter.noop)
    send_runs = timed_runs(_invoker(send_app, counter, expected), args.repeat, warmup)
    return result(
        PEER,
        "W2",
        "s",
        runs,
        {
            **_info(),
            "build_runs": build_runs,
            "expressed_as": "static fan-out: 1,000 nodes, an edge from src to each, list edge to sink",
            "send_variant_runs": send_runs,
            "threads": "invoke's default thread pool (max_concurrency unset)",
        },
    )


def _self_loop(n: int) -> CompiledStateGraph[Any, Any, Any, Any]:
    def step(state: State) -> dict[str, int]:
        return {"i": state["i"] + 1}

    def again(state: State) -> str:
        return "step" if state["i"] < n else END

    graph = StateGraph(State)
    graph.add_node("step", step)
    graph.add_edge(START, "step")
    graph.add_conditional_edges("step", again, ["step", END])
    return graph.compile()


def w3(args: argparse.Namespace) -> Result:
    def loop(n: int) -> None:
        final = _self_loop(n).invoke({"i": 0}, {"recursion_limit": n + 1})
        if final["i"] != n:
            raise AssertionError(f"loop stopped at {final['i']}, wanted {n}")

    runs, extra = measure_w3(loop, args.repeat, not args.no_warmup)
    return result(
        PEER,
        "W3",
        "s",
        runs,
        {**_info(), **extra, "expressed_as": "one node, conditional self-edge, recursion_limit=n+1"},
    )


def w5l(args: argparse.Namespace) -> Result:
    counter = Counter()

    def sleeper(_state: State) -> None:
        time.sleep(W5_TASK_SECONDS)
        counter.noop(_state)

    app = _send_fan_out(counter, W5_TASKS, sleeper)
    config: Any = {"max_concurrency": W5_SLOTS}

    def once() -> float:
        counter.reset()
        elapsed = stopwatch(lambda: app.invoke({"i": 0}, config))
        counter.expect(W5_TASKS + 2)
        return elapsed

    runs = timed_runs(once, args.repeat, not args.no_warmup)
    return result(
        PEER,
        "W5L",
        "s",
        runs,
        {
            **_info(),
            "expressed_as": "Send x200 to one sleeping node, max_concurrency=4; compiled outside the clock",
            "ideal_s": W5_TASKS * W5_TASK_SECONDS / W5_SLOTS,
        },
    )


NO_BROKER = (
    "open-source LangGraph runs a graph inside one process; it has no broker-backed "
    "worker pool to spread tasks over Redis (that is the separate LangGraph Platform)"
)

if __name__ == "__main__":
    run_main(
        PEER,
        __doc__.splitlines()[0],
        {"W1": w1, "W2": w2, "W3": w3, "W5L": w5l},
        {"W4": NO_BROKER, "W5": NO_BROKER},
    )
