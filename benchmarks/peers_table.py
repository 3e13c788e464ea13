"""Run the peer engines (LangGraph, Dask, Celery) on the shared workloads and tabulate them.

Each peer script runs in its own virtualenv (see ``peers/setup_venvs.py``)
as a subprocess and prints one JSON result line; this module collects them,
adds the whole-process wall time of W1, and prints a table with rows =
workload and columns = engine, each cell ``median [min-max]``.

The table code only knows the result-dict format (``peers/common.py``), not
the engines, so Graflow's side joins by appending dicts of the same shape
(``"peer": "graflow"``) before calling :func:`format_table`, and ratio columns
come from ``format_table(results, baseline="graflow")``.

Usage: ``python benchmarks/peers_table.py [--workload W1 ...] [--peer dask ...] [--json out.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis_server import redis_server

HERE = Path(__file__).resolve().parent
PEERS_DIR = HERE / "peers"
VENVS_DIR = HERE / ".venvs"

WORKLOADS: tuple[str, ...] = ("W1", "W2", "W3", "W4", "W5", "W5L")
# The issue asks LangGraph for W1-W3 and W5L, Dask for W1-W5 (W5L is a cheap
# extra), Celery for W4-W5. Every peer is still asked for every workload: a
# script answers "skipped" with its reason in a fraction of a second, and the
# table then says why a cell is empty.
PEERS: tuple[str, ...] = ("langgraph", "dask", "celery")
PROCESS_WORKLOAD = "W1 process"
HIGHER_IS_BETTER = frozenset({"tasks/s"})
SUBPROCESS_TIMEOUT_S = 1200
EN_DASH, TIMES = "\u2013", "\u00d7"  # escaped to keep the source ASCII (ruff RUF001)

Result = dict[str, Any]


def _log(message: str) -> None:
    print(f"[peers] {message}", file=sys.stderr, flush=True)


def peer_command(peer: str, workload: str, redis_url: str, repeat: int, warmup: bool = True) -> list[str]:
    command = [
        str(VENVS_DIR / peer / "bin" / "python"),
        str(PEERS_DIR / f"{peer}_bench.py"),
        "--workload",
        workload,
        "--repeat",
        str(repeat),
        "--redis-url",
        redis_url,
    ]
    return command if warmup else [*command, "--no-warmup"]


def run_peer(peer: str, workload: str, redis_url: str, repeat: int = 5) -> Result:
    """One peer script invocation; a crash becomes an ``error`` result, not an exception."""
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            peer_command(peer, workload, redis_url, repeat),
            capture_output=True,
            text=True,
            cwd=PEERS_DIR,
            timeout=SUBPROCESS_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return {"peer": peer, "workload": workload, "error": f"timed out after {SUBPROCESS_TIMEOUT_S} s"}
    wall = time.perf_counter() - start
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = proc.stderr.strip()[-1500:]
        return {"peer": peer, "workload": workload, "error": f"exit {proc.returncode}: {tail}"}
    parsed: Result = json.loads(lines[-1])
    parsed["harness_wall_s"] = wall
    _log(f"{peer} {workload}: {wall:.1f} s")
    return parsed


def measure_process_time(peer: str, redis_url: str, repeat: int = 5) -> Result:
    """Whole-process wall time of a single cold W1 run: interpreter, imports, build, run, exit."""
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        proc = subprocess.run(
            peer_command(peer, "W1", redis_url, repeat=1, warmup=False),
            capture_output=True,
            text=True,
            cwd=PEERS_DIR,
            timeout=SUBPROCESS_TIMEOUT_S,
        )
        runs.append(time.perf_counter() - start)
        if proc.returncode != 0:
            error = f"exit {proc.returncode}: {proc.stderr.strip()[-1500:]}"
            return {"peer": peer, "workload": PROCESS_WORKLOAD, "error": error}
    _log(f"{peer} {PROCESS_WORKLOAD}: {sum(runs):.1f} s")
    return {
        "peer": peer,
        "workload": PROCESS_WORKLOAD,
        "unit": "s",
        "runs": runs,
        "extra": {"command": "--workload W1 --repeat 1 --no-warmup, timed from spawn to exit"},
    }


def run_peers(
    workloads: Iterable[str], redis_url: str, peers: Iterable[str] | None = None, repeat: int = 5
) -> list[Result]:
    """Every selected peer on every selected workload it supports, one after another.

    Sequential on purpose: on a 2-core machine any overlap would distort the
    other peer's figures.
    """
    wanted = set(workloads)
    results: list[Result] = []
    for peer in peers or PEERS:
        for workload in (w for w in WORKLOADS if w in wanted):
            result = run_peer(peer, workload, redis_url, repeat)
            results.append(result)
            if workload == "W1" and "runs" in result:
                results.append(measure_process_time(peer, redis_url, repeat))
    return results


# --- table ---------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """One table cell's numbers; ``runs`` has one value for single measurements."""

    unit: str
    runs: Sequence[float]

    @property
    def median(self) -> float:
        return statistics.median(self.runs)


def _workload_of(label: str) -> str:
    return label.split(" ")[0]


def _row_order(label: str) -> int:
    """Rows follow WORKLOADS; within a workload, first-seen order (sorted() is stable)."""
    workload = _workload_of(label)
    return WORKLOADS.index(workload) if workload in WORKLOADS else len(WORKLOADS)


def cells(result: Result) -> dict[str, Cell]:
    """Table rows for one measured result: ``{row label: Cell}``.

    W3-style results (``extra.sizes``) expand to a per-iteration row per
    size, then memory rows; ``extra.signed_runs`` adds a row for the same
    workload with signed payloads; skipped and failed results have no rows.
    """
    workload = result["workload"]
    if "runs" not in result:
        return {}
    sizes: dict[str, dict[str, Any]] = result.get("extra", {}).get("sizes", {})
    if not sizes:
        rows = {workload: Cell(result["unit"], result["runs"])}
        signed = result.get("extra", {}).get("signed_runs")
        if signed:  # the same workload with payload signing on (Graflow's W4/W5)
            rows[f"{workload} signed payloads"] = Cell(result["unit"], signed)
        return rows
    rows: dict[str, Cell] = {}
    labels = {size: f"{workload} {int(size) // 1000}k" for size in sizes}
    for size, data in sizes.items():
        rows[f"{labels[size]} per iteration"] = Cell(result["unit"], data["runs"])
    for key, what in (("tracemalloc_peak_bytes", "peak heap (tracemalloc)"), ("max_rss_bytes", "max RSS")):
        for size, data in sizes.items():
            if key in data:
                rows[f"{labels[size]} {what}"] = Cell("B", [data[key]])
    return rows


def _sig3(number: float) -> str:
    """Three significant digits, keeping trailing zeros (1.10, not 1.1)."""
    return f"{number:#.3g}".rstrip(".") if abs(number) < 1000 else f"{number:,.0f}"


def format_value(value: float, unit: str) -> str:
    if unit == "s":
        for scale, suffix in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
            if abs(value) >= scale or suffix == "µs":
                return f"{_sig3(value / scale)} {suffix}"
    if unit == "B":
        return f"{value / 2**20:.1f} MiB"
    if unit == "tasks/s":
        return f"{value:,.0f}/s"
    return f"{_sig3(value)} {unit}"


def format_cell(cell: Cell) -> str:
    median = format_value(cell.median, cell.unit)
    if len(cell.runs) == 1:
        return median
    low, high = (format_value(v, cell.unit) for v in (min(cell.runs), max(cell.runs)))
    return f"{median} [{low}{EN_DASH}{high}]"


def slowdown(cell: Cell, baseline: Cell) -> float:
    """How many times worse than the baseline (>1 = worse), whatever the unit's direction."""
    if cell.unit in HIGHER_IS_BETTER:
        return baseline.median / cell.median
    return cell.median / baseline.median


def format_table(results: Iterable[Result], baseline: str | None = None) -> str:
    """Markdown table: rows = workload, columns = engine, cells = median [min-max].

    With ``baseline`` (an engine present in ``results``), each other engine's
    cell gets ``xR``: its median relative to the baseline's, oriented so that
    R > 1 means that engine is worse (slower, fewer tasks/s, more memory).
    """
    grid: dict[str, dict[str, Cell]] = {}
    engines: list[str] = []
    missing: dict[tuple[str, str], str] = {}  # (engine, workload) -> "skipped" | "error"
    reasons: dict[tuple[str, str, str], list[str]] = {}  # (engine, kind, reason) -> workloads
    for result in results:
        engine, workload = result["peer"], result["workload"]
        if engine not in engines:
            engines.append(engine)
        for label, found in cells(result).items():
            grid.setdefault(label, {})[engine] = found
        for kind in ("skipped", "error"):
            if kind in result:
                missing[engine, workload] = kind
                reasons.setdefault((engine, kind, str(result[kind])), []).append(workload)
    measured_workloads = {_workload_of(label) for label in grid}
    for _engine, workload in missing:
        if workload not in measured_workloads:
            grid.setdefault(workload, {})
    if baseline in engines:
        engines.remove(baseline)
        engines.insert(0, baseline)

    header = ["workload", *engines]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label in sorted(grid, key=_row_order):
        row = grid[label]
        base = row.get(baseline) if baseline else None
        texts = []
        for engine in engines:
            cell = row.get(engine)
            if cell is None:
                texts.append(missing.get((engine, _workload_of(label)), "-"))
                continue
            text = format_cell(cell)
            if base is not None and engine != baseline:
                text += f" {TIMES}{slowdown(cell, base):.2g}"
            texts.append(text)
        lines.append(f"| {label} | " + " | ".join(texts) + " |")
    if reasons:
        lines.append("")
        for (engine, kind, reason), workloads in reasons.items():
            lines.append(f"- {engine} {', '.join(workloads)} {kind}: {reason}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", action="append", choices=WORKLOADS, help="repeatable; default all")
    parser.add_argument("--peer", action="append", choices=PEERS, help="repeatable; default all")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the raw result dicts here")
    parser.add_argument("--no-setup", action="store_true", help="do not (re)check the peer venvs")
    args = parser.parse_args(argv)
    peers = args.peer or list(PEERS)

    if not args.no_setup:
        setup = [sys.executable, str(PEERS_DIR / "setup_venvs.py")]
        subprocess.run(setup + [arg for peer in peers for arg in ("--peer", peer)], check=True, stdout=sys.stderr)

    start = time.perf_counter()
    # Load average before and after: the figures mean little if something else was running.
    _log(f"load average before: {os.getloadavg()}")
    with redis_server() as redis_url:
        _log(f"redis at {redis_url}")
        results = run_peers(args.workload or WORKLOADS, redis_url, peers, args.repeat)
    _log(f"all peers took {time.perf_counter() - start:.0f} s; load average after: {os.getloadavg()}")

    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    print(format_table(results))


if __name__ == "__main__":
    main()
