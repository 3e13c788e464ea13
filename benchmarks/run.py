"""The performance table of issue #7: Graflow and its peers on the same workloads, in one sitting.

Starts its own redis-server on 127.0.0.1, runs Graflow (this workspace's venv) and each peer (its
own venv under benchmarks/.venvs, built by peers/setup_venvs.py) one after another, then prints a
markdown table of medians [min-max] with each peer's ratio to Graflow, the whole-process time of W1,
and Graflow against each target of the issue.

    uv run nox -s bench            # or: .venv/bin/python benchmarks/run.py [--repeat 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE)]

import peers_table  # noqa: E402
from redis_server import redis_server  # noqa: E402

Result = dict[str, Any]
GRAFLOW_WORKLOADS = ("W1", "W1R", "W1O", "W2", "W3", "W4", "W5", "W5L", "W6")


def graflow_command(workload: str, redis_url: str, repeat: int, warmup: bool = True) -> list[str]:
    command = [sys.executable, str(HERE / "graflow_bench.py"), "--workload", workload, "--repeat", str(repeat)]
    command += ["--redis-url", redis_url + "/0"]
    return command if warmup else [*command, "--no-warmup"]


def run_graflow(workload: str, redis_url: str, repeat: int) -> list[Result]:
    proc = subprocess.run(graflow_command(workload, redis_url, repeat), capture_output=True, text=True, timeout=1200)
    if proc.returncode != 0:
        return [{"peer": "graflow", "workload": workload, "error": proc.stderr.strip()[-1500:]}]
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def graflow_process_time(redis_url: str, repeat: int) -> Result:
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(graflow_command("W1", redis_url, 1, warmup=False), check=True, capture_output=True)
        runs.append(time.perf_counter() - started)
    return {"peer": "graflow", "workload": peers_table.PROCESS_WORKLOAD, "unit": "s", "runs": runs, "extra": {}}


def _median(results: list[Result], peer: str, workload: str) -> float | None:
    for r in results:
        if r["peer"] == peer and r["workload"] == workload and "runs" in r:
            return float(statistics.median(r["runs"]))
    return None


def _best_peer(results: list[Result], workload: str, higher_is_better: bool) -> float | None:
    values = [v for p in peers_table.PEERS if (v := _median(results, p, workload)) is not None and p != "graflow"]
    if not values:
        return None
    return max(values) if higher_is_better else min(values)


def _signed(results: list[Result], workload: str) -> float | None:
    """Graflow's median for ``workload`` with payload signing on (its ``signed_runs``)."""
    for r in results:
        if r["peer"] == "graflow" and r["workload"] == workload and "signed_runs" in r.get("extra", {}):
            return float(statistics.median(r["extra"]["signed_runs"]))
    return None


def _w3(results: list[Result], key: str) -> list[float]:
    for r in results:
        if r["peer"] == "graflow" and r["workload"] == "W3":
            sizes = r["extra"]["sizes"]
            return [float(statistics.median(sizes[s]["runs"])) if key == "runs" else sizes[s][key] for s in sizes]
    return []


def targets(results: list[Result]) -> list[str]:
    """Graflow against each target of the performance issue, with the figures used."""
    g: Callable[[str], float | None] = lambda w: _median(results, "graflow", w)  # noqa: E731
    lines = []

    def check(name: str, ok: bool | None, detail: str) -> None:
        mark = "n/a" if ok is None else ("met" if ok else "MISSED")
        lines.append(f"- {name}: {mark} ({detail})")

    w1, best_w1 = g("W1"), _best_peer(results, "W1", False)
    if w1 is not None:
        check("W1 <= 5 us/task", w1 / 1000 <= 5e-6, f"{w1 / 1000 * 1e6:.2f} us/task")
        if best_w1:
            check("W1 <= 1/10 of fastest peer", w1 <= best_w1 / 10, f"{best_w1 / w1:.0f}x faster")
    for name, what in (("W1R", "retries=3 on every task"), ("W1O", "OTel tracing, in-memory exporter")):
        if w1 is not None and (with_feature := g(name)) is not None:
            per_task = (with_feature - w1) / 1000 * 1e6
            lines.append(f"- {name} ({what}): {with_feature / 1000 * 1e6:.2f} us/task, {per_task:+.2f} us/task over W1")
    if (w2 := g("W2")) is not None:
        check("W2 <= 15 ms", w2 <= 0.015, f"{w2 * 1e3:.2f} ms")
    per_iter, peaks = _w3(results, "runs"), _w3(results, "tracemalloc_peak_bytes")
    if per_iter:
        check(
            "W3 <= 5 us/iteration at 10k and 100k",
            max(per_iter) <= 5e-6,
            ", ".join(f"{v * 1e6:.2f} us" for v in per_iter),
        )
        check(
            "W3 peak memory flat within 10 MB",
            max(peaks) - min(peaks) <= 10e6,
            f"{[round(p / 1e6, 2) for p in peaks]} MB",
        )
    w4, best_w4 = g("W4"), _best_peer(results, "W4", True)
    if w4 is not None:
        check("W4 >= 4,000 tasks/s", w4 >= 4000, f"{w4:,.0f} tasks/s")
        if best_w4:
            check("W4 >= 2x fastest peer", w4 >= 2 * best_w4, f"{w4 / best_w4:.1f}x")
        if (w4s := _signed(results, "W4")) is not None:
            check("W4 signed payloads >= 4,000 tasks/s", w4s >= 4000, f"{w4s:,.0f} tasks/s with HMAC-SHA256")
    if (w5 := g("W5")) is not None:
        check("W5 makespan <= 1.05 s", w5 <= 1.05, f"{w5:.3f} s")
        if (w5s := _signed(results, "W5")) is not None:
            check("W5 signed payloads makespan <= 1.05 s", w5s <= 1.05, f"{w5s:.3f} s with HMAC-SHA256")
    if (w5l := g("W5L")) is not None:
        check("W5L makespan <= 1.03 s", w5l <= 1.03, f"{w5l:.3f} s")
    if (cp := g("W6 checkpoint")) is not None:
        check("W6 checkpoint <= 2 ms (fsync)", cp <= 0.002, f"{cp * 1e3:.2f} ms")
    if (rs := g("W6 resume")) is not None:
        check("W6 resume <= 1 ms", rs <= 0.001, f"{rs * 1e3:.2f} ms")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-peers", action="store_true", help="Graflow only")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args()

    if not args.no_peers:
        subprocess.run([sys.executable, str(HERE / "peers" / "setup_venvs.py")], check=True, stdout=sys.stderr)
    load_before = os.getloadavg()
    started = time.perf_counter()
    results: list[Result] = []
    with redis_server() as redis_url:
        for workload in GRAFLOW_WORKLOADS:
            results += run_graflow(workload, redis_url, args.repeat)
            print(f"[graflow] {workload} done", file=sys.stderr, flush=True)
        results.append(graflow_process_time(redis_url, args.repeat))
        if not args.no_peers:
            results += peers_table.run_peers(peers_table.WORKLOADS, redis_url, repeat=args.repeat)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(
        f"Measured {when} on {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"load average {load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after; "
        f"{time.perf_counter() - started:.0f} s in all. Cells: median [min-max] of {args.repeat} runs after a "
        "warm-up; xR = how many times worse than Graflow.\n"
    )
    print(peers_table.format_table(results, baseline="graflow"))
    print("\nTargets (issue #7):")
    print("\n".join(targets(results)))


if __name__ == "__main__":
    main()
