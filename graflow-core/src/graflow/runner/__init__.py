"""``graflow run``: load a workflow from a file or module, run it with progress, write a run report.

The CLI (graflow/cli.py) only parses options and prints; the work is here, one job per module:
``target`` finds the workflow, ``recorder`` is the plugin that watches the run, ``progress`` draws
it, ``report`` writes the JSON run report, ``run`` ties them together.
"""

from graflow.runner.errors import UsageError
from graflow.runner.report import REPORT_SCHEMA, write_report
from graflow.runner.run import RunOptions, RunResult, prepare_run
from graflow.runner.target import load_target, parse_params

__all__ = [
    "REPORT_SCHEMA",
    "RunOptions",
    "RunResult",
    "UsageError",
    "load_target",
    "parse_params",
    "prepare_run",
    "write_report",
]
