"""Pictures of a graph: Mermaid and Graphviz DOT text, and PNG through Graphviz's ``dot``.

Two sources: a workflow's static graph (``wf.to_mermaid()``, ``wf.to_dot()``: tasks, edges,
parallel groups as subgraphs/clusters) and a run report (``graflow show --report run.json``: the
executed graph, dynamic tasks with dashed edges, iteration counts in labels, status colours).

Output is deterministic: nodes appear in the graph's insertion order and get generated ids
(``t1``, ``g2``, ...), so task ids never need to be valid Mermaid or DOT identifiers; labels are
escaped (Mermaid entity codes, DOT string escapes).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from graflow.core.graph import TaskGraph
from graflow.core.task import ParallelGroup
from graflow.exceptions import GraflowError

# fill, stroke, text colour per task status (report pictures)
STATUS_COLOURS: dict[str, tuple[str, str, str]] = {
    "succeeded": ("#d4edda", "#2e7d32", "#1b5e20"),
    "failed": ("#f8d7da", "#c62828", "#7f0000"),
    "cache_hit": ("#d6e9ff", "#1565c0", "#0d3c78"),
    "interrupted": ("#fff3cd", "#ef6c00", "#7a4f01"),
    "not_run": ("#eeeeee", "#9e9e9e", "#616161"),
    "skipped": ("#f7f7f7", "#bdbdbd", "#9e9e9e"),
}

INSTALL_GRAPHVIZ = (
    "rendering PNG needs Graphviz's `dot` program, which is not on PATH. Install Graphviz "
    "(apt-get install graphviz / brew install graphviz), or use --format mermaid or --format dot."
)


class GraphvizMissingError(GraflowError, FileNotFoundError):
    """``dot`` is not installed; the message says how to install it."""


@attrs.frozen
class _Node:
    node_id: str
    kind: str  # "task" or "group"
    dynamic: bool = False
    status: str | None = None
    notes: tuple[str, ...] = ()  # extra label lines


@attrs.frozen
class Picture:
    """What both formats draw: nodes, group membership, static and dynamic edges."""

    title: str
    nodes: dict[str, _Node]
    members: dict[str, list[str]]  # group id -> member ids
    backends: dict[str, str]
    edges: list[tuple[str, str]]
    dynamic_edges: list[tuple[str, str]]

    @classmethod
    def from_graph(cls, graph: TaskGraph, title: str) -> Picture:
        nodes: dict[str, _Node] = {}
        members: dict[str, list[str]] = {}
        backends: dict[str, str] = {}
        for node_id, node in graph.nodes.items():
            is_group = isinstance(node, ParallelGroup)
            nodes[node_id] = _Node(node_id, "group" if is_group else "task", node_id in graph.dynamic)
            if isinstance(node, ParallelGroup):
                members[node_id] = node.member_ids
                backends[node_id] = node.backend
        edges = [(s, t) for s, targets in graph.successors.items() for t in targets]
        return cls(title, nodes, members, backends, edges, list(graph.dynamic_edges))

    @classmethod
    def from_report(cls, report: Mapping[str, Any]) -> Picture:
        graph = report.get("graph") or {}
        tasks: Mapping[str, Any] = report.get("tasks") or {}
        groups: Mapping[str, Any] = graph.get("groups") or {}
        nodes: dict[str, _Node] = {}
        for entry in graph.get("nodes") or []:
            node_id = str(entry["id"])
            if entry.get("kind") == "group":
                status = groups.get(node_id, {}).get("status")
                nodes[node_id] = _Node(node_id, "group", bool(entry.get("dynamic")), status)
                continue
            info = tasks.get(node_id) or {}
            nodes[node_id] = _Node(
                node_id, "task", bool(entry.get("dynamic")), info.get("status", "not_run"), _task_notes(info)
            )
        title = f"{report.get('workflow', 'workflow')}: {report.get('status', '?')}"
        return cls(
            title,
            nodes,
            {g: list(v.get("members", [])) for g, v in groups.items()},
            {g: str(v.get("backend", "")) for g, v in groups.items()},
            [(str(s), str(t)) for s, t in graph.get("edges") or []],
            [(str(s), str(t)) for s, t in graph.get("dynamic_edges") or []],
        )

    # --- shared layout ---------------------------------------------------------------------------

    def ids(self) -> dict[str, str]:
        """Generated, deterministic identifiers: tasks ``t<n>``, groups ``g<n>``, in graph order."""
        return {
            node_id: f"{'g' if node.kind == 'group' else 't'}{i}"
            for i, (node_id, node) in enumerate(self.nodes.items(), 1)
        }

    def top_level(self) -> list[str]:
        """Nodes outside every group, in topological order of the static edges (ties: graph order),
        so a picture reads from its roots down whatever order the tasks were declared in."""
        inside = {m for ms in self.members.values() for m in ms}
        order = [n for n in self.nodes if n not in inside]
        rank = {n: i for i, n in enumerate(order)}
        indegree = dict.fromkeys(order, 0)
        successors: dict[str, list[str]] = {n: [] for n in order}
        for source, target in self.edges:
            if source in rank and target in rank:
                successors[source].append(target)
                indegree[target] += 1
        ready = [n for n in order if indegree[n] == 0]
        out: list[str] = []
        while ready:
            ready.sort(key=rank.__getitem__)
            node = ready.pop(0)
            out.append(node)
            for nxt in successors[node]:
                indegree[nxt] -= 1
                if indegree[nxt] == 0:
                    ready.append(nxt)
        return out + [n for n in order if n not in set(out)]  # nothing left over in a DAG

    def group_label(self, group_id: str) -> str:
        backend = self.backends.get(group_id)
        return f"{group_id} ({backend})" if backend else group_id


def _task_notes(info: Mapping[str, Any]) -> tuple[str, ...]:
    notes = []
    cycles = int(info.get("cycles") or 0)
    if cycles > 1:
        notes.append(f"{cycles} iterations")
    attempts = int(info.get("attempts") or 0)
    if attempts > 1:
        notes.append(f"{attempts} attempts")
    if info.get("worker"):
        notes.append(f"on {info['worker']}")
    if info.get("from_checkpoint"):
        notes.append("from checkpoint")
    return tuple(notes)


# --- Mermaid ---------------------------------------------------------------------------------------


def _mermaid_text(text: str) -> str:
    """Mermaid entity codes for the characters that would end or confuse a quoted label."""
    out = []
    for char in text:
        if char in '"#<>&`':
            out.append(f"#{ord(char)};")
        elif char in "\r\n":
            out.append(" ")
        else:
            out.append(char)
    return "".join(out)


def _mermaid_label(node: _Node) -> str:
    lines = [_mermaid_text(node.node_id), *(_mermaid_text(n) for n in node.notes)]
    return "<br/>".join(lines)


def to_mermaid(picture: Picture) -> str:
    ids = picture.ids()
    lines = ["flowchart TD"]

    def emit(node_id: str, indent: str) -> None:
        node = picture.nodes.get(node_id)
        if node is None:
            return
        if node.kind == "group":
            lines.append(f'{indent}subgraph {ids[node_id]}["{_mermaid_text(picture.group_label(node_id))}"]')
            for member in picture.members.get(node_id, []):
                emit(member, indent + "    ")
            lines.append(f"{indent}end")
        else:
            lines.append(f'{indent}{ids[node_id]}["{_mermaid_label(node)}"]')

    for node_id in picture.top_level():
        emit(node_id, "    ")
    for source, target in picture.edges:
        if source in ids and target in ids:
            lines.append(f"    {ids[source]} --> {ids[target]}")
    for source, target in picture.dynamic_edges:
        if source in ids and target in ids:
            lines.append(f"    {ids[source]} -.-> {ids[target]}")
    used = [s for s in STATUS_COLOURS if any(n.status == s for n in picture.nodes.values())]
    for status in used:
        fill, stroke, colour = STATUS_COLOURS[status]
        lines.append(f"    classDef {status} fill:{fill},stroke:{stroke},color:{colour}")
    for status in used:
        tasks = [ids[n] for n, node in picture.nodes.items() if node.status == status and node.kind == "task"]
        if tasks:
            lines.append(f"    class {','.join(tasks)} {status}")
        for group_id, node in picture.nodes.items():
            if node.kind == "group" and node.status == status:
                lines.append(f"    style {ids[group_id]} fill:{fill_of(status)},stroke:{STATUS_COLOURS[status][1]}")
    dynamic = [ids[n] for n, node in picture.nodes.items() if node.dynamic and node.kind == "task"]
    if dynamic:
        lines.append("    classDef dynamic stroke-dasharray:5 5")
        lines.append(f"    class {','.join(dynamic)} dynamic")
    return "\n".join(lines) + "\n"


def fill_of(status: str) -> str:
    return STATUS_COLOURS[status][0]


# --- DOT -------------------------------------------------------------------------------------------


def _dot_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "").replace("\n", "\\n")


def to_dot(picture: Picture) -> str:
    ids = picture.ids()
    lines = [
        f'digraph "{_dot_text(picture.title)}" {{',
        f'    graph [compound=true, rankdir=TB, fontname="Helvetica", label="{_dot_text(picture.title)}", labelloc=t];',
        '    node [shape=box, style="rounded,filled", fillcolor="#ffffff", fontname="Helvetica"];',
        '    edge [fontname="Helvetica"];',
    ]
    anchors: dict[str, str] = {}

    def anchor(node_id: str) -> str:
        """The node an edge to or from ``node_id`` attaches to (a group's first task)."""
        if picture.nodes[node_id].kind != "group":
            return ids[node_id]
        for member in picture.members.get(node_id, []):
            if member in picture.nodes:
                return anchor(member)
        return anchors.setdefault(node_id, f"{ids[node_id]}_anchor")

    def emit(node_id: str, indent: str) -> None:
        node = picture.nodes.get(node_id)
        if node is None:
            return
        if node.kind == "group":
            lines.append(f"{indent}subgraph cluster_{ids[node_id]} {{")
            style = "dashed,rounded" + (",filled" if node.status else "")
            lines.append(f'{indent}    label="{_dot_text(picture.group_label(node_id))}"; style="{style}";')
            if node.status in STATUS_COLOURS:
                fill, stroke, _ = STATUS_COLOURS[node.status]
                lines.append(f'{indent}    fillcolor="{fill}"; color="{stroke}";')
            members = [m for m in picture.members.get(node_id, []) if m in picture.nodes]
            if not members:
                lines.append(f"{indent}    {anchor(node_id)} [shape=point, style=invis];")
            for member in members:
                emit(member, indent + "    ")
            lines.append(f"{indent}}}")
            return
        label = "\\n".join(_dot_text(t) for t in (node.node_id, *node.notes))
        attributes = [f'label="{label}"']
        if node.status in STATUS_COLOURS:
            fill, stroke, colour = STATUS_COLOURS[node.status]
            attributes += [f'fillcolor="{fill}"', f'color="{stroke}"', f'fontcolor="{colour}"']
        if node.dynamic:
            attributes.append('style="rounded,filled,dashed"')
        lines.append(f"{indent}{ids[node_id]} [{', '.join(attributes)}];")

    for node_id in picture.top_level():
        emit(node_id, "    ")

    def edge(source: str, target: str, extra: Iterable[str]) -> str:
        attributes = list(extra)
        if picture.nodes[source].kind == "group":
            attributes.append(f"ltail=cluster_{ids[source]}")
        if picture.nodes[target].kind == "group":
            attributes.append(f"lhead=cluster_{ids[target]}")
        suffix = f" [{', '.join(attributes)}]" if attributes else ""
        return f"    {anchor(source)} -> {anchor(target)}{suffix};"

    for source, target in picture.edges:
        if source in ids and target in ids:
            lines.append(edge(source, target, ()))
    for source, target in picture.dynamic_edges:
        if source in ids and target in ids:
            lines.append(edge(source, target, ("style=dashed",)))
    lines.append("}")
    return "\n".join(lines) + "\n"


# --- entry points --------------------------------------------------------------------------------


def graph_to_mermaid(graph: TaskGraph, title: str = "workflow") -> str:
    return to_mermaid(Picture.from_graph(graph, title))


def graph_to_dot(graph: TaskGraph, title: str = "workflow") -> str:
    return to_dot(Picture.from_graph(graph, title))


def report_to_mermaid(report: Mapping[str, Any]) -> str:
    return to_mermaid(Picture.from_report(report))


def report_to_dot(report: Mapping[str, Any]) -> str:
    return to_dot(Picture.from_report(report))


def render_png(dot_source: str, output: str, dot_program: str | None = None) -> None:
    """Run Graphviz's ``dot`` to write a PNG; GraphvizMissingError when it is not installed."""
    program = dot_program or shutil.which("dot")
    if program is None:
        raise GraphvizMissingError(INSTALL_GRAPHVIZ)
    proc = subprocess.run(
        [program, "-Tpng", "-o", output], input=dot_source.encode(), capture_output=True, timeout=120, check=False
    )
    if proc.returncode != 0:
        raise GraflowError(f"dot failed with exit status {proc.returncode}: {proc.stderr.decode(errors='replace')}")
