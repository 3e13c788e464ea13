"""The ``graflow`` command: ``graflow plugins`` and ``graflow worker``. The only module that prints."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

import attrs

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="graflow", description="Graflow workflow engine")
    sub = parser.add_subparsers(dest="command", required=True)
    plugins = sub.add_parser("plugins", help="list installed plugins and the names each provides")
    plugins.add_argument("--all", action="store_true", help="include plugins that provide nothing")
    plugins.add_argument("--json", action="store_true", help="machine-readable output")
    plugins.set_defaults(func=_plugins)
    sub.add_parser("worker", help="run a TaskWorker (see `graflow worker --help`)", add_help=False)
    return parser


def _configure_logging() -> None:
    """Applications configure structlog; as the application here, the CLI logs INFO+ to stderr."""
    import logging

    import structlog

    if not structlog.is_configured():
        structlog.configure(
            wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
            logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        )


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["worker"]:
        return _worker(args_list[1:])  # configures logging from its --log-level and --log-format
    _configure_logging()
    args = build_parser().parse_args(args_list)
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
