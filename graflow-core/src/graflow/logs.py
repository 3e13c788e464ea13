"""Graflow's loggers: quiet until the application asks (issue 12).

A library must not write to stdout on its own. Each Graflow logger follows the application:

* if the application configured structlog, events go through structlog with its configuration;
* otherwise they go to the standard ``logging`` logger of the same name (``graflow.engine``, ...),
  as ``"event key=value ..."`` with the fields also in ``record.graflow``. Unconfigured, ``logging``
  shows WARNING and above on stderr; ``logging.basicConfig(level=logging.INFO)`` shows the run
  events, and so do ``GRAFLOW_LOG_LEVEL=info`` and ``graflow --log-level info``.

A disabled level costs one ``isEnabledFor`` check; per-task events are only built when DEBUG is on.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import structlog

ENV_LEVEL = "GRAFLOW_LOG_LEVEL"
LEVELS = ("debug", "info", "warning", "error", "critical")
_HANDLER_NAME = "graflow-default"


class GraflowLogger:
    """A bound logger with structlog's calling convention (``log.info("event", key=value)``)."""

    __slots__ = ("_context", "_name", "_std")

    def __init__(self, name: str, context: dict[str, Any] | None = None) -> None:
        self._name = name
        self._context: dict[str, Any] = context or {}
        self._std = logging.getLogger(name)

    def bind(self, **values: Any) -> GraflowLogger:
        return GraflowLogger(self._name, {**self._context, **values})

    def is_enabled_for(self, level: int) -> bool:
        if structlog.is_configured():
            check = getattr(self._structlog(), "is_enabled_for", None)
            return bool(check(level)) if check is not None else True
        return self._std.isEnabledFor(level)

    def _structlog(self) -> Any:
        return structlog.get_logger(self._name).bind(**self._context)

    def _log(self, level: int, method: str, event: str, fields: dict[str, Any]) -> None:
        if structlog.is_configured():
            getattr(self._structlog(), method)(event, **fields)
            return
        std = self._std
        if not std.isEnabledFor(level):
            return
        exc_info = fields.pop("exc_info", None)
        values = {**self._context, **fields}
        text = " ".join([event, *(f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}" for k, v in values.items())])
        std.log(level, "%s", text, exc_info=exc_info, extra={"graflow": {"event": event, **values}})

    def debug(self, event: str, **fields: Any) -> None:
        self._log(logging.DEBUG, "debug", event, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._log(logging.INFO, "info", event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._log(logging.WARNING, "warning", event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._log(logging.ERROR, "error", event, fields)

    def exception(self, event: str, **fields: Any) -> None:
        fields.setdefault("exc_info", True)
        self._log(logging.ERROR, "error", event, fields)


def get_logger(name: str) -> GraflowLogger:
    """The logger every Graflow module uses (``name`` under ``graflow``)."""
    return GraflowLogger(name)


def parse_level(value: str) -> int:
    """``"info"`` -> ``logging.INFO``; anything else is refused, naming the valid levels."""
    name = value.strip().lower()
    if name not in LEVELS:
        raise ValueError(f"unknown log level {value!r}: use one of {', '.join(LEVELS)}")
    return int(getattr(logging, name.upper()))


def set_level(level: str | int) -> None:
    """Show Graflow's events from ``level`` up on stderr, whatever the application configured.

    Adds one stderr handler to the ``graflow`` logger (once) and stops propagation to the root
    logger, so events are not printed twice when the application also has handlers.
    """
    numeric = parse_level(level) if isinstance(level, str) else level
    logger = logging.getLogger("graflow")
    logger.setLevel(numeric)
    if not any(h.get_name() == _HANDLER_NAME for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.set_name(_HANDLER_NAME)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False


def apply_environment() -> None:
    """``GRAFLOW_LOG_LEVEL=info`` (or debug, warning, ...) turns Graflow's events on at import."""
    value = os.environ.get(ENV_LEVEL)
    if value:
        try:
            set_level(value)
        except ValueError as exc:
            raise ValueError(f"{ENV_LEVEL}: {exc}") from None
