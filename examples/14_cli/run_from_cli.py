"""``graflow run`` and ``graflow show`` on a workflow module, checking the JSON run report.

Run: uv run python examples/14_cli/run_from_cli.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _pipeline import build  # noqa: E402


def graflow(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "graflow.cli", *args], capture_output=True, text=True, timeout=120)


def main() -> None:
    print("The static graph (wf.to_mermaid()):")
    print(build().to_mermaid())

    with tempfile.TemporaryDirectory() as tmp:
        report_path = Path(tmp) / "run.json"
        target = f"{HERE / '_pipeline.py'}:build"
        proc = graflow("run", target, "--param", "batches=4", "--param", "region=us", "--report", str(report_path))
        print(proc.stdout)
        assert proc.returncode == 0, proc.stderr
        report = json.loads(report_path.read_text())

        assert report["schema"] == 1 and report["status"] == "succeeded", report["status"]
        assert report["workflow"] == "sales-us" and report["params"] == {"batches": 4, "region": "us"}
        tasks = report["tasks"]
        assert tasks["fetch"]["cycles"] == 4, tasks["fetch"]
        assert tasks["notify_sales"]["dynamic"] and tasks["notify_sales"]["status"] == "succeeded"
        assert report["graph"]["groups"]["summaries"]["members"] == ["total", "count"]
        assert all(t["status"] == "succeeded" for t in tasks.values()), tasks
        print(f"report: {report['summary']['succeeded']} tasks succeeded in {report['duration_s']:.3f}s")

        shown = graflow("show", "--report", str(report_path))
        assert shown.returncode == 0, shown.stderr
        assert "fetch<br/>4 iterations" in shown.stdout and " -.-> " in shown.stdout
        print("The executed graph (graflow show --report run.json):")
        print(shown.stdout)


if __name__ == "__main__":
    main()
