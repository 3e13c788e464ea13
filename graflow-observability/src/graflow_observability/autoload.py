"""The ``otel`` entry point: tracing switched on by installation, when the process asks for it.

Installed, the package must not slow down processes that do not trace: a lifecycle hook with an
implementation costs every task of every run (graflow-core's budget is a few µs per task). So
``plugin``, what the entry point registers, is decided each time Graflow loads its plugins (the
first ``WorkflowEngine()``, ``graflow worker``, and again after
``graflow.plugins.manager.reset_default_host()``), from the settings at that moment:

* ``GRAFLOW_OTEL=off``: no tracing (an object without hooks);
* ``GRAFLOW_OTEL_EXPORTER=...`` set: a TracerProvider exporting that way (see
  :mod:`graflow_observability.exporters`), made the global one if none was set, and tracing on;
* ``GRAFLOW_OTEL=on``: tracing on, with the global TracerProvider (configured later is fine);
* otherwise: tracing on if a global TracerProvider was already set by the application, else off.

In code, skip all this: ``WorkflowEngine(plugins=[TracingPlugin(provider)])``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from opentelemetry import trace

from graflow.exceptions import GraflowError
from graflow_observability.settings import EXPORTER_ENV, SWITCH_ENV

if TYPE_CHECKING:
    from graflow_observability.tracing import TracingPlugin

_ON = ("1", "on", "true", "yes")
_OFF = ("0", "off", "false", "no")


class TracingOff:
    """What the entry point registers when tracing is off: no hooks, so no cost."""

    def __repr__(self) -> str:
        return f"<graflow-observability tracing off: set {SWITCH_ENV}=on, {EXPORTER_ENV}, or a TracerProvider>"


def global_provider_is_set() -> bool:
    """Whether the application installed a TracerProvider (the default is a proxy that drops spans)."""
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def decide() -> TracingPlugin | TracingOff:
    """The plugin this process gets, from the environment (see the module docstring)."""
    switch = os.environ.get(SWITCH_ENV, "").strip().lower()
    if switch in _OFF:
        return TracingOff()
    if switch and switch not in _ON:
        raise GraflowError(f"{SWITCH_ENV}={switch!r}: use on or off (or leave it unset to follow the TracerProvider)")
    exporter = os.environ.get(EXPORTER_ENV, "").strip()
    if not exporter and switch not in _ON and not global_provider_is_set():
        return TracingOff()  # the common case: installed, not configured; the SDK is not even imported
    from graflow_observability.tracing import TracingPlugin

    if exporter:
        from graflow_observability.exporters import provider_from_setting

        provider = provider_from_setting(exporter)
        if not global_provider_is_set():
            trace.set_tracer_provider(provider)  # task code's own spans go the same way
        return TracingPlugin(provider)
    return TracingPlugin()


_decided: dict[tuple[str, ...], TracingPlugin | TracingOff] = {}


def current() -> TracingPlugin | TracingOff:
    """:func:`decide`, remembered per outcome: the same settings give the same plugin object (one
    exporter and provider per ``GRAFLOW_OTEL_EXPORTER`` value, however often plugins are loaded),
    a TracerProvider set since the last load turns tracing on."""
    switch = os.environ.get(SWITCH_ENV, "").strip().lower()
    exporter = os.environ.get(EXPORTER_ENV, "").strip()
    if switch in _OFF:
        key: tuple[str, ...] = ("off",)
    elif exporter:
        key = ("exporter", switch, exporter)
    else:
        key = ("global", switch, str(global_provider_is_set()))
    chosen = _decided.get(key)
    if chosen is None:
        chosen = _decided[key] = decide()
    return chosen


def __getattr__(name: str) -> TracingPlugin | TracingOff:
    """``plugin`` (the entry point ``graflow_observability.autoload:plugin``) is decided when read."""
    if name == "plugin":
        return current()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
