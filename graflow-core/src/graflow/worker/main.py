"""``python -m graflow.worker.main`` (and ``graflow worker``): run one TaskWorker until SIGTERM/SIGINT.

Every option has an environment variable, so container manifests configure workers without a
command line (spec section 1: ``REDIS_HOST``, ``MAX_CONCURRENT_TASKS``). The queue comes from the
queue backend named by ``--queue-backend`` in the installed plugins; it must be one other processes
can read (``redis`` from graflow-redis).

Exit codes: 0 after a graceful stop, 2 for a configuration error.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

import structlog

from graflow.exceptions import GraflowError
from graflow.logs import get_logger
from graflow.worker.protocol import WorkSource
from graflow.worker.worker import TaskWorker

log = get_logger("graflow.worker")


def _env(name: str, default: Any) -> Any:
    return os.environ.get(name, default)


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """Add the worker options to ``parser`` (e.g. the ``graflow worker`` subparser) or a new one."""
    if parser is None:
        parser = argparse.ArgumentParser(
            prog="python -m graflow.worker.main",
            description="Run a Graflow TaskWorker: execute parallel-group members from a shared queue.",
        )
    add = parser.add_argument
    add(
        "--worker-id",
        default=_env("GRAFLOW_WORKER_ID", None),
        help="name in logs and heartbeats (env GRAFLOW_WORKER_ID; default: host-pid)",
    )
    add(
        "--redis-url",
        default=_env("REDIS_URL", None),
        help="redis://host:port/db (env REDIS_URL; else REDIS_HOST/REDIS_PORT; else redis://localhost:6379/0)",
    )
    add(
        "--queue-backend",
        default=_env("GRAFLOW_QUEUE_BACKEND", "redis"),
        help="queue backend to consume, by plugin name (env GRAFLOW_QUEUE_BACKEND; default: redis)",
    )
    add(
        "--queue",
        default=_env("GRAFLOW_QUEUE", "default"),
        help="queue name, to run specialised fleets (env GRAFLOW_QUEUE; default: default); "
        "groups choose it with with_execution(queue_name=...)",
    )
    add(
        "--key-prefix",
        default=_env("GRAFLOW_KEY_PREFIX", None),
        help="prefix of every key the queue backend uses, to share one Redis between applications "
        "(env GRAFLOW_KEY_PREFIX; default: the backend's, graflow); must match the submitters' key_prefix",
    )
    add(
        "--max-concurrent-tasks",
        type=int,
        default=int(_env("MAX_CONCURRENT_TASKS", 4)),
        help="tasks run at once, one thread each (env MAX_CONCURRENT_TASKS; default: 4)",
    )
    add(
        "--graceful-shutdown-timeout",
        type=float,
        default=float(_env("GRACEFUL_SHUTDOWN_TIMEOUT", 30.0)),
        help="seconds running tasks get to finish after SIGTERM before they are given back "
        "(env GRACEFUL_SHUTDOWN_TIMEOUT; default: 30)",
    )
    add(
        "--worker-timeout",
        type=float,
        default=float(_env("WORKER_TIMEOUT", 10.0)),
        help="seconds without a heartbeat after which a worker counts as dead and its tasks go to "
        "others (env WORKER_TIMEOUT; default: 10)",
    )
    add(
        "--max-deliveries",
        type=int,
        default=int(_env("MAX_DELIVERIES", 3)),
        help="a task that took down this many workers is dead-lettered (env MAX_DELIVERIES; default: 3)",
    )
    add(
        "--log-level",
        default=_env("GRAFLOW_LOG_LEVEL", "info"),
        choices=["debug", "info", "warning", "error"],
        help="(env GRAFLOW_LOG_LEVEL; default: info)",
    )
    add(
        "--log-format",
        default=_env("GRAFLOW_LOG_FORMAT", "console"),
        choices=["console", "json"],
        help="(env GRAFLOW_LOG_FORMAT; default: console)",
    )
    from graflow.plugins.manager import default_host

    add_options = default_host().lifecycle["graflow_worker_add_options"]
    if add_options is not None:  # e.g. graflow-observability's --metrics-port
        add_options(parser=parser)
    return parser


def configure_logging(level: str, fmt: str) -> None:
    """Configure structlog for a worker process, unless the application already did."""
    if structlog.is_configured():
        return
    renderer: Any = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )


def build_queue(args: argparse.Namespace) -> WorkSource:
    """The work source named by ``--queue-backend``, configured from the options."""
    from graflow.plugins.manager import default_host

    host = default_host()
    registration = host.get("queue backend", args.queue_backend)  # unknown: lists what is installed
    config: dict[str, Any] = {
        "queue_name": args.queue,
        "worker_timeout": args.worker_timeout,
        "max_deliveries": args.max_deliveries,
    }
    if args.redis_url:
        config["redis_url"] = args.redis_url
    if args.key_prefix:
        config["key_prefix"] = args.key_prefix
    source = registration.factory("", config)
    if not isinstance(source, WorkSource):
        raise GraflowError(
            f"queue backend {args.queue_backend!r} cannot feed workers: it lives inside one process. "
            f"Use one that other processes can read, such as 'redis' (pip install graflow-redis); "
            f"installed queue backends: {', '.join(host.names('queue backend'))}"
        )
    return source


def build_worker(args: argparse.Namespace) -> TaskWorker:
    if args.max_concurrent_tasks < 1:
        raise GraflowError(f"--max-concurrent-tasks must be >= 1, got {args.max_concurrent_tasks}")
    if args.worker_timeout <= 0:
        raise GraflowError(f"--worker-timeout must be > 0, got {args.worker_timeout}")
    if args.max_deliveries < 1:
        raise GraflowError(f"--max-deliveries must be >= 1, got {args.max_deliveries}")
    return TaskWorker(
        build_queue(args),
        worker_id=args.worker_id,
        max_concurrent_tasks=args.max_concurrent_tasks,
        graceful_shutdown_timeout=args.graceful_shutdown_timeout,
        options=vars(args),
    )


def run(args: argparse.Namespace) -> int:
    """Run a worker from parsed options (what ``graflow worker`` calls); returns the exit code."""
    configure_logging(args.log_level, args.log_format)
    try:
        worker = build_worker(args)
    except (GraflowError, LookupError, ValueError) as exc:
        log.error("worker_config_invalid", error=str(exc))
        return 2
    try:
        worker.start()
    except GraflowError as exc:  # a plugin refused its settings (graflow_worker_started)
        log.error("worker_config_invalid", error=str(exc))
        return 2
    finally:
        worker.queue.close()
    return 2 if worker.fatal_error is not None else 0


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    parser = build_parser()
    if prog is not None:
        parser.prog = prog
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
