"""TaskGraph: tasks by id, static edges, group membership, and the checks that keep it a DAG."""

from __future__ import annotations

import contextvars
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from graflow.exceptions import DuplicateTaskError, GraphCycleError, GraphError, TaskNotFoundError

if TYPE_CHECKING:
    from graflow.core.task import Executable

# The graph that operators and new tasks attach to: set by ``with workflow(...)``.
ACTIVE_GRAPH: contextvars.ContextVar[TaskGraph | None] = contextvars.ContextVar("graflow_active_graph", default=None)


class TaskGraph:
    """Nodes (tasks and parallel groups) by id, with successor and predecessor lists.

    Static edges must form a DAG (checked on every ``add_edge``); loops are made at run time with
    ``next_iteration`` or ``next_task(..., goto=True)``. Members of a parallel group are nodes too,
    so they can be looked up, but they are run by their group and take no edges of their own.
    """

    def __init__(self) -> None:
        self.nodes: dict[str, Executable] = {}
        self.successors: dict[str, list[str]] = {}
        self.predecessors: dict[str, list[str]] = {}
        self.member_of: dict[str, str] = {}
        self.dynamic: set[str] = set()
        # (parent, child) for tasks added by next_task: shown by edges(), never used for scheduling
        self.dynamic_edges: list[tuple[str, str]] = []

    def copy(self) -> TaskGraph:
        """A graph with the same nodes and edges that can grow on its own (one per run)."""
        clone = TaskGraph()
        clone.nodes = dict(self.nodes)
        clone.successors = {k: list(v) for k, v in self.successors.items()}
        clone.predecessors = {k: list(v) for k, v in self.predecessors.items()}
        clone.member_of = dict(self.member_of)
        clone.dynamic = set(self.dynamic)
        clone.dynamic_edges = list(self.dynamic_edges)
        return clone

    # --- nodes -------------------------------------------------------------------------------------

    def add_node(self, task: Executable, task_id: str | None = None) -> None:
        """Add ``task`` under its own id. ``task_id`` is accepted for upstream Graflow 0.2's
        ``graph.add_node(task, "id")`` and must equal ``task.task_id`` (a node's id is its task's)."""
        if task_id is not None and task_id != task.task_id:
            raise GraphError(
                f"add_node(task, {task_id!r}): the task's id is {task.task_id!r}; a node is stored under its "
                f"task's id. Create the task with that id instead: TaskWrapper({task_id!r}, fn) or @task({task_id!r})"
            )
        existing = self.nodes.get(task.task_id)
        if existing is task:
            return
        if existing is not None:
            raise DuplicateTaskError(task.task_id)
        self.nodes[task.task_id] = task
        self.successors[task.task_id] = []
        self.predecessors[task.task_id] = []

    def remove_node(self, task_id: str) -> None:
        for succ in self.successors.pop(task_id, []):
            self.predecessors[succ].remove(task_id)
        for pred in self.predecessors.pop(task_id, []):
            self.successors[pred].remove(task_id)
        self.nodes.pop(task_id, None)
        self.member_of.pop(task_id, None)
        self.dynamic.discard(task_id)

    def rename_node(self, old: str, new: str) -> None:
        if new == old:
            return
        if new in self.nodes:
            raise DuplicateTaskError(new)
        self.nodes[new] = self.nodes.pop(old)
        self.successors[new] = self.successors.pop(old)
        self.predecessors[new] = self.predecessors.pop(old)
        for succ in self.successors[new]:
            self.predecessors[succ] = [new if p == old else p for p in self.predecessors[succ]]
        for pred in self.predecessors[new]:
            self.successors[pred] = [new if s == old else s for s in self.successors[pred]]
        for member, group in list(self.member_of.items()):
            if group == old:
                self.member_of[member] = new
        owner = self.member_of.pop(old, None)  # a renamed group nested in another group stays a member
        if owner is not None:
            self.member_of[new] = owner

    def get(self, task_id: str) -> Executable:
        try:
            return self.nodes[task_id]
        except KeyError:
            raise TaskNotFoundError(task_id, list(self.nodes)) from None

    get_node = get  # upstream Graflow 0.2's name

    def __contains__(self, task_id: object) -> bool:
        return task_id in self.nodes

    def __len__(self) -> int:
        return len(self.nodes)

    def __iter__(self) -> Iterator[str]:
        return iter(self.nodes)

    # --- edges -------------------------------------------------------------------------------------

    def add_edge(self, source: str, target: str) -> None:
        for end in (source, target):
            if end in self.member_of:
                raise GraphError(
                    f"task {end!r} is a member of parallel group {self.member_of[end]!r}; members are "
                    "run by their group and cannot have edges of their own. Connect the group instead "
                    "(group >> next), or wrap the sequence in one task."
                )
        if target in self.successors[source]:
            return
        if source == target or self._reaches(target, source):
            raise GraphCycleError(self._path(target, source) or [source])
        self.successors[source].append(target)
        self.predecessors[target].append(source)

    def add_member(self, group_id: str, member_id: str) -> None:
        owner = self.member_of.get(member_id)
        if owner is not None and owner != group_id:
            raise GraphError(f"task {member_id!r} is already a member of parallel group {owner!r}")
        if self.successors.get(member_id) or self.predecessors.get(member_id):
            raise GraphError(
                f"task {member_id!r} already has static edges, so it cannot be a parallel group member. "
                "Put the whole group in the sequence instead: a >> (b | c) >> d."
            )
        self.member_of[member_id] = group_id

    def _reaches(self, start: str, goal: str) -> bool:
        seen = {start}
        stack = [start]
        while stack:
            for nxt in self.successors[stack.pop()]:
                if nxt == goal:
                    return True
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return False

    def _path(self, start: str, goal: str) -> list[str] | None:
        """A path start -> ... -> goal, used to name the cycle an edge would close."""
        parents: dict[str, str | None] = {start: None}
        stack = [start]
        while stack:
            node = stack.pop()
            if node == goal:
                path = [node]
                while (parent := parents[path[-1]]) is not None:
                    path.append(parent)
                return list(reversed(path))
            for nxt in self.successors[node]:
                if nxt not in parents:
                    parents[nxt] = node
                    stack.append(nxt)
        return None

    # --- queries -----------------------------------------------------------------------------------

    def roots(self) -> list[str]:
        """Nodes with no predecessors that are not group members, in insertion order."""
        return [n for n, preds in self.predecessors.items() if not preds and n not in self.member_of]

    def reachable_from(self, starts: Iterable[str]) -> set[str]:
        seen: set[str] = set()
        stack = list(starts)
        while stack:
            node = stack.pop()
            if node in seen:
                continue
            seen.add(node)
            stack.extend(self.successors[node])
        return seen

    def edges(self) -> list[tuple[str, str]]:
        """Static edges, then the edges ``next_task`` added at run time."""
        return [(s, t) for s, targets in self.successors.items() for t in targets] + self.dynamic_edges

    get_edges = edges  # upstream Graflow 0.2's name

    def __repr__(self) -> str:
        return f"TaskGraph(nodes={len(self.nodes)}, edges={len(self.edges())})"
