"""``with workflow("name") as wf:`` collects the tasks wired inside it into ``wf.graph``."""

from __future__ import annotations

import contextvars
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Literal, overload

from graflow.core.context import ExecutionContext
from graflow.core.engine import WorkflowEngine
from graflow.core.graph import ACTIVE_GRAPH, TaskGraph
from graflow.core.task import Executable


class Workflow:
    """A named graph of tasks, and the way to run it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.graph = TaskGraph()
        self.last_context: ExecutionContext | None = None
        self._tokens: list[contextvars.Token[TaskGraph | None]] = []

    def __enter__(self) -> Workflow:
        self._tokens.append(ACTIVE_GRAPH.set(self.graph))
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        ACTIVE_GRAPH.reset(self._tokens.pop())

    def add(self, *tasks: Executable) -> Workflow:
        """Put tasks in the graph that were defined outside the ``with`` block and wired to nothing."""
        for item in tasks:
            item._attach(self.graph)
        return self

    def create_context(
        self,
        start_node: str | Executable | None = None,
        *,
        max_steps: int | None = None,
        engine: WorkflowEngine | None = None,
        queue_backend: str = "memory",
        channel_backend: str = "memory",
        config: Mapping[str, Any] | None = None,
        initial_channel: Mapping[str, Any] | None = None,
    ) -> ExecutionContext:
        """A new run of this workflow; ``initial_channel`` values are in its channel before any task runs."""
        if isinstance(start_node, Executable):
            self.add(start_node)
            start_node = start_node.task_id
        context = ExecutionContext.create(
            self.graph,
            start_node,
            queue_backend=queue_backend,
            channel_backend=channel_backend,
            config=config,
            max_steps=max_steps,
            engine=engine,
        )
        if initial_channel:
            for key, value in initial_channel.items():
                context.channel.set(key, value)
        return context

    @overload
    def execute(
        self,
        start_node: str | Executable | None = ...,
        max_steps: int | None = ...,
        engine: WorkflowEngine | None = ...,
        *,
        ret_context: Literal[False] = ...,
        queue_backend: str = ...,
        channel_backend: str = ...,
        config: Mapping[str, Any] | None = ...,
        initial_channel: Mapping[str, Any] | None = ...,
    ) -> Any: ...

    @overload
    def execute(
        self,
        start_node: str | Executable | None = ...,
        max_steps: int | None = ...,
        engine: WorkflowEngine | None = ...,
        *,
        ret_context: Literal[True],
        queue_backend: str = ...,
        channel_backend: str = ...,
        config: Mapping[str, Any] | None = ...,
        initial_channel: Mapping[str, Any] | None = ...,
    ) -> tuple[Any, ExecutionContext]: ...

    def execute(
        self,
        start_node: str | Executable | None = None,
        max_steps: int | None = None,
        engine: WorkflowEngine | None = None,
        *,
        ret_context: bool = False,
        queue_backend: str = "memory",
        channel_backend: str = "memory",
        config: Mapping[str, Any] | None = None,
        initial_channel: Mapping[str, Any] | None = None,
    ) -> Any:
        """Run from ``start_node`` (a task id or task; default: every root) and return the last task's result.

        Pass an ``engine`` that has handlers registered. ``ret_context=True`` returns
        ``(result, context)``; the context is also kept as ``wf.last_context`` for
        ``get_result(task_id)``. ``initial_channel={...}`` seeds the run's channel (tasks receive
        those keys as parameters of the same name).
        """
        engine = engine or WorkflowEngine()
        context = self.create_context(
            start_node,
            max_steps=max_steps,
            engine=engine,
            queue_backend=queue_backend,
            channel_backend=channel_backend,
            config=config,
            initial_channel=initial_channel,
        )
        self.last_context = context
        result = engine.execute(context)
        return (result, context) if ret_context else result

    def to_mermaid(self) -> str:
        """The static graph as a Mermaid flowchart (parallel groups as subgraphs); see graflow.viz."""
        from graflow.viz import graph_to_mermaid

        return graph_to_mermaid(self.graph, self.name)

    def to_dot(self) -> str:
        """The static graph as Graphviz DOT (parallel groups as clusters); see graflow.viz."""
        from graflow.viz import graph_to_dot

        return graph_to_dot(self.graph, self.name)

    def __repr__(self) -> str:
        return f"Workflow({self.name!r}, {self.graph!r})"


def workflow(name: str) -> Workflow:
    """``with workflow("etl") as wf: extract >> transform >> load`` then ``wf.execute()``."""
    return Workflow(name)


WorkflowContext = Workflow
"""Upstream Graflow 0.2's name for the object ``with workflow(...) as ctx`` gives."""
