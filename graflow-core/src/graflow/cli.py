"""The ``graflow`` command: ``plugins``, ``worker``, ``run`` and ``show``. The only module that prints.

``run`` and ``show`` parse options here and leave the work to graflow.runner and graflow.viz.
Exit status: 0 success, 1 a failed run, 2 bad input (usage), 130 interrupted by Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from collections.abc import Sequence
from typing import Any, TextIO

import attrs

from graflow.exceptions import GraflowError
from graflow.plugins.manager import PluginHost


def _plugins(args: argparse.Namespace) -> int:
    host = PluginHost()
    infos = host.plugin_infos()
    if not args.all:
        infos = [i for i in infos if i.provides or i.hooks]
    if args.json:
        print(json.dumps([attrs.asdict(i) for i in infos], indent=2))
        return 0
    for info in infos:
        origin = f"{info.distribution} {info.version}" if info.distribution else "(registered in code)"
        print(f"{info.name}  [{origin}]")
        by_kind: dict[str, list[str]] = {}
        for kind, name in info.provides:
            by_kind.setdefault(kind, []).append(name)
        for kind, names in sorted(by_kind.items()):
            print(f"    {kind}: {', '.join(names)}")
        observers = [h for h in info.hooks if not h.startswith("graflow_register_")]
        if observers:
            print(f"    observes: {', '.join(observers)}")
    return 0


def _worker(argv: Sequence[str]) -> int:
    try:
        from graflow.worker.main import main as worker_main
    except ImportError as exc:  # pragma: no cover - the worker ships with graflow-core
        print(f"graflow worker is unavailable: {exc}", file=sys.stderr)
        return 2
    return int(worker_main(list(argv), prog="graflow worker") or 0)


class _LogSink:
    """Where structlog writes: stderr, or above the live progress line while a run draws one."""

    def __init__(self) -> None:
        self.target: Any = None

    def write(self, text: str) -> int:
        (self.target or sys.stderr).write(text)
        return len(text)

    def flush(self) -> None:
        (self.target or sys.stderr).flush()


_LOG_SINK = _LogSink()


def _run(args: argparse.Namespace) -> int:
    from graflow.runner.errors import UsageError
    from graflow.runner.progress import LiveProgress, PlainProgress
    from graflow.runner.run import EXIT_USAGE, RunOptions, prepare_run

    options = RunOptions(
        target=args.target,
        params=tuple(args.param),
        resume=args.resume,
        queue_backend=args.queue_backend,
        channel_backend=args.channel_backend,
        config=tuple(args.config),
        max_steps=args.max_steps,
        report=args.report,
    )
    try:
        prepared = prepare_run(options)
    except UsageError as exc:
        print(f"graflow run: {exc}", file=sys.stderr)
        return EXIT_USAGE
    name = prepared.workflow_name
    live = sys.stdout.isatty() and not args.plain
    display: LiveProgress | PlainProgress = (
        LiveProgress(sys.stdout, prepared.recorder, name, log_stream=sys.stderr)
        if live
        else PlainProgress(sys.stdout, prepared.recorder, name)
    )
    prepared.recorder.listener = display
    _LOG_SINK.target = display.log_file
    try:
        display.start()
    except (OSError, ValueError):  # stdout already closed: the run goes on without a display
        _stdout_gone()
    try:
        result = prepared.execute()
    finally:
        _LOG_SINK.target = None
        if prepared.recorder.display_error is None:
            try:
                display.stop()
            except (OSError, ValueError):
                _stdout_gone()
        else:
            _stdout_gone()
    if result.report_error is not None:
        print(
            f"graflow run: warning: the report could not be written to {prepared.options.report}: "
            f"{result.report_error}",
            file=sys.stderr,
        )
    try:
        _summary(result, prepared.recorder.snapshot()[:2], sys.stdout if result.error is None else sys.stderr)
    except BrokenPipeError:  # `graflow run ... | head`: the reader left; the exit status still tells
        _stdout_gone()
    return result.exit_code


def _stdout_gone() -> None:
    """The reader of stdout went away (a closed pipe): send what is left to /dev/null, so that
    neither later prints nor the interpreter's final flush fail."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        sys.stdout = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - lives until exit


def _summary(result: Any, counts: tuple[int, int], out: TextIO) -> None:
    report = result.report
    done, total = counts
    if result.error is not None and result.status == "failed":
        print("".join(traceback.format_exception(result.error)).rstrip(), file=sys.stderr)
    headline = {
        "succeeded": "run succeeded",
        "failed": "run failed",
        "cancelled": "run cancelled",
        "interrupted": "run interrupted (Ctrl-C)",
    }[result.status]
    error = report.get("error")
    if error and result.status != "interrupted":
        message = (error["message"] or "").splitlines()
        headline += f": {error['type'].rsplit('.', 1)[-1]}: {message[0] if message else ''}"
    print(headline, file=out)
    print(
        f"  workflow {report['workflow']}, session {report['session_id']}: {done}/{total} tasks done "
        f"in {report['duration_s']:.2f}s",
        file=out,
    )
    if report.get("last_checkpoint") and result.status != "succeeded":  # a finished run has nothing to resume
        print(f"  last checkpoint: {report['last_checkpoint']} (continue with --resume)", file=out)
    if result.report_path:
        print(f"  report: {result.report_path}", file=out)


def _show(args: argparse.Namespace) -> int:
    from graflow import viz
    from graflow.runner.errors import UsageError
    from graflow.runner.report import read_report
    from graflow.runner.target import load_target, parse_params

    if (args.target is None) == (args.report is None):
        print(
            "graflow show: give a workflow (MODULE:NAME or FILE.py:NAME) or --report RUN.json, not both",
            file=sys.stderr,
        )
        return 2
    try:
        if args.report is not None:
            if args.param:
                raise UsageError("--param builds a workflow from a factory; it does not apply to --report")
            try:
                report = read_report(args.report)
            except (OSError, ValueError) as exc:
                raise UsageError(f"--report {args.report}: {exc}") from exc
            picture = viz.Picture.from_report(report)
            name = str(report.get("workflow") or "run")
        else:
            target = load_target(args.target, parse_params(args.param))
            picture = viz.Picture.from_graph(target.workflow.graph, target.workflow.name)
            name = target.workflow.name
    except UsageError as exc:
        print(f"graflow show: {exc}", file=sys.stderr)
        return 2
    if args.format == "png":
        output = args.output or f"{_file_name(name)}.png"
        try:
            viz.render_png(viz.to_dot(picture), output)
        except viz.GraphvizMissingError as exc:
            print(f"graflow show: {exc}", file=sys.stderr)
            return 2
        except GraflowError as exc:
            print(f"graflow show: {exc}", file=sys.stderr)
            return 1
        print(f"wrote {output}")
        return 0
    text = viz.to_mermaid(picture) if args.format == "mermaid" else viz.to_dot(picture)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(text)
        print(f"wrote {args.output}")
    else:
        sys.stdout.write(text)
    return 0


def _file_name(name: str) -> str:
    """A workflow name as a file name in the current directory (``etl/v2`` -> ``etl_v2``)."""
    import re

    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")
    return cleaned or "workflow"


_LOG_LEVELS = ["debug", "info", "warning", "error"]


def _default_log_level() -> str:
    """``GRAFLOW_LOG_LEVEL`` when it names a level ``--log-level`` accepts, else ``warning``."""
    import os

    level = os.environ.get("GRAFLOW_LOG_LEVEL", "").strip().lower()
    return level if level in _LOG_LEVELS else "warning"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="graflow", description="Graflow workflow engine")
    sub = parser.add_subparsers(dest="command", required=True)
    plugins = sub.add_parser("plugins", help="list installed plugins and the names each provides")
    plugins.add_argument("--all", action="store_true", help="include plugins that provide nothing")
    plugins.add_argument("--json", action="store_true", help="machine-readable output")
    plugins.set_defaults(func=_plugins)
    sub.add_parser("worker", help="run a TaskWorker (see `graflow worker --help`)", add_help=False)

    run = sub.add_parser(
        "run",
        help="run a workflow with a progress display and a JSON run report",
        description="Run FILE.py:NAME or MODULE:NAME, where NAME is a Workflow or a factory returning one "
        "(its parameters come from --param). Exit status: 0 success, 1 failed, 2 bad input, 130 Ctrl-C.",
    )
    run.add_argument("target", metavar="TARGET", help="path/to/file.py:NAME or dotted.module:NAME (NAME optional)")
    run.add_argument(
        "--param",
        "-p",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a factory argument (repeatable); typed by the factory's annotation, else JSON, else a string",
    )
    run.add_argument("--resume", metavar="CHECKPOINT", help="continue the run saved in this checkpoint")
    run.add_argument("--queue-backend", default="memory", metavar="NAME", help="queue backend (default: memory)")
    run.add_argument("--channel-backend", default="memory", metavar="NAME", help="channel backend (default: memory)")
    run.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="run configuration for backends and groups, e.g. redis_url=redis://localhost:6379/0 (repeatable)",
    )
    run.add_argument("--report", metavar="FILE", help="write the JSON run report here (also on failure and Ctrl-C)")
    run.add_argument("--max-steps", type=int, metavar="N", help="stop a run that executes more than N tasks")
    run.add_argument(
        "--log-level",
        default=_default_log_level(),
        choices=_LOG_LEVELS,
        help="structlog events shown on stderr (default: GRAFLOW_LOG_LEVEL, else warning)",
    )
    run.add_argument("--plain", action="store_true", help="one line per event even on a terminal")
    run.set_defaults(func=_run)

    show = sub.add_parser(
        "show",
        help="draw a workflow's graph, or the graph a run executed (--report)",
        description="Print a Mermaid or DOT picture of a workflow's static graph, or of the graph a run "
        "executed (from its --report file: dynamic tasks, iterations, status colours); png needs Graphviz.",
    )
    show.add_argument("target", metavar="TARGET", nargs="?", help="path/to/file.py:NAME or dotted.module:NAME")
    show.add_argument("--report", metavar="RUN_JSON", help="draw the executed graph from a `graflow run` report")
    show.add_argument("--format", "-f", default="mermaid", choices=["mermaid", "dot", "png"])
    show.add_argument("--output", "-o", metavar="FILE", help="write here (png default: WORKFLOW.png)")
    show.add_argument("--param", "-p", action="append", default=[], metavar="NAME=VALUE", help="a factory argument")
    show.set_defaults(func=_show)
    return parser


def _configure_logging(level: str = "info") -> None:
    """Applications configure structlog; as the application here, the CLI logs to stderr (INFO+ by
    default; ``graflow run --log-level``), through a sink a live progress display can take over."""
    import logging

    import structlog

    if not structlog.is_configured():
        structlog.configure(
            wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
            logger_factory=structlog.PrintLoggerFactory(_LOG_SINK),  # type: ignore[arg-type]
        )


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["worker"]:
        return _worker(args_list[1:])  # configures logging from its --log-level and --log-format
    args = build_parser().parse_args(args_list)
    _configure_logging(getattr(args, "log_level", "info"))
    try:
        return int(args.func(args))
    except KeyboardInterrupt:  # before a run started (a slow import): nothing to report
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
