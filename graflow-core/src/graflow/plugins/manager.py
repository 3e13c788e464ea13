"""Builds the plugin manager and the name registry an engine uses.

Order (pytest's): the built-in plugins first, then the entry points of the group ``graflow``, then
the plugins passed in code (``WorkflowEngine(plugins=[...])``). Order never decides which plugin
wins a name: names live in registrar tables where a duplicate is an error.

Environment:

* ``GRAFLOW_DISABLE_PLUGINS=a,b`` blocks those entry-point names before loading.
* ``GRAFLOW_LOAD_PLUGINS=a,b`` loads only those entry points (empty: none).
* ``GRAFLOW_TRACE_PLUGINS=1`` logs every hook call (pluggy's hook call monitoring).
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import warnings
from collections.abc import Iterable
from types import ModuleType
from typing import Any

import attrs
import pluggy

from graflow import hookspecs
from graflow.exceptions import PluginVersionWarning
from graflow.logs import get_logger
from graflow.plugins import (
    builtin_backends,
    builtin_caches,
    builtin_checkpoints,
    builtin_handlers,
    builtin_policies,
)
from graflow.plugins.registry import Registration, Registry

log = get_logger("graflow.plugins")

BUILTIN_PLUGINS: tuple[tuple[str, ModuleType], ...] = (
    ("graflow.builtin.handlers", builtin_handlers),
    ("graflow.builtin.backends", builtin_backends),
    ("graflow.builtin.policies", builtin_policies),
    ("graflow.builtin.checkpoints", builtin_checkpoints),
    ("graflow.builtin.caches", builtin_caches),
)

REGISTRAR_HOOKS: dict[str, str] = {
    "graflow_register_handlers": "handler",
    "graflow_register_queue_backends": "queue backend",
    "graflow_register_channel_backends": "channel backend",
    "graflow_register_coordinators": "coordination backend",
    "graflow_register_policies": "policy",
    "graflow_register_checkpoint_stores": "checkpoint store",
    "graflow_register_cache_stores": "cache store",
}

LIFECYCLE_HOOKS = (
    "graflow_run_started",
    "graflow_run_finished",
    "graflow_task_started",
    "graflow_task_succeeded",
    "graflow_task_failed",
    "graflow_task_cache_hit",
    "graflow_task_retrying",
    "graflow_group_started",
    "graflow_group_finished",
    "graflow_remote_context",
    "graflow_remote_started",
    "graflow_remote_finished",
    "graflow_remote_retrying",
    "graflow_remote_attempt_started",
    "graflow_worker_add_options",
    "graflow_worker_started",
    "graflow_worker_task_done",
    "graflow_worker_stopped",
)


def _env_list(name: str) -> list[str] | None:
    value = os.environ.get(name)
    if value is None:
        return None
    return [part.strip() for part in value.split(",") if part.strip()]


def build_plugin_manager(
    extra: Iterable[object] = (), distributions: dict[str, importlib.metadata.Distribution] | None = None
) -> pluggy.PluginManager:
    """A fresh manager with built-ins, entry points and ``extra`` registered, in that order.

    ``distributions``, when given, is filled with the distribution each entry point came from.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    for name, module in BUILTIN_PLUGINS:
        pm.register(module, name=name)
    for blocked in _env_list("GRAFLOW_DISABLE_PLUGINS") or []:
        pm.set_blocked(blocked)
    only = _env_list("GRAFLOW_LOAD_PLUGINS")
    for ep in importlib.metadata.entry_points(group=hookspecs.ENTRY_POINT_GROUP):
        if pm.is_blocked(ep.name) or pm.get_plugin(ep.name) is not None:
            continue
        if only is not None and ep.name not in only:
            continue
        plugin = ep.load()
        pm.register(plugin, name=ep.name)
        if ep.dist is not None:
            _check_core_version(ep.dist)
            if distributions is not None:
                distributions[ep.name] = ep.dist
    for plugin in extra:
        pm.register(plugin)
    pm.check_pending()  # a misspelt hook name fails here instead of never running
    if os.environ.get("GRAFLOW_TRACE_PLUGINS"):
        pm.add_hookcall_monitoring(
            lambda hook_name, impls, kwargs: log.debug("hook_called", hook=hook_name, kwargs=list(kwargs)),
            lambda outcome, hook_name, impls, kwargs: None,
        )
    return pm


# --- version compatibility --------------------------------------------------------------------------

_SPEC = re.compile(r"^\s*(>=|<=|==|!=|~=|<|>)\s*([0-9][0-9a-zA-Z.]*)\s*$")


def _release(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split("."):
        digits = re.match(r"\d+", piece)
        if digits is None:
            break
        parts.append(int(digits.group()))
    return tuple(parts)


def version_satisfies(version: str, specifier: str) -> bool:
    """Whether ``version`` meets a comma-separated specifier such as ``>=0.1,<0.2``.

    Only release numbers are compared: enough for the ranges our plugins declare, without adding
    ``packaging`` as a dependency of the core.
    """
    have = _release(version)
    for clause in filter(None, (c.strip() for c in specifier.split(","))):
        match = _SPEC.match(clause)
        if match is None:
            return True  # a form we do not understand: do not warn on guesses
        op, raw = match.groups()
        want = _release(raw)
        width = max(len(have), len(want))
        a = have + (0,) * (width - len(have))
        b = want + (0,) * (width - len(want))
        ok = {
            ">=": a >= b,
            "<=": a <= b,
            ">": a > b,
            "<": a < b,
            "==": a == b,
            "!=": a != b,
            "~=": a >= b and a[: len(want) - 1] == b[: len(want) - 1],
        }[op]
        if not ok:
            return False
    return True


def core_version() -> str:
    try:
        return importlib.metadata.version("graflow-core")
    except importlib.metadata.PackageNotFoundError:  # running from a source tree
        return "0.0.0"


def _check_core_version(dist: importlib.metadata.Distribution) -> None:
    for requirement in dist.requires or []:
        match = re.match(r"^\s*graflow-core\s*([^;]*)", requirement)
        if match is None:
            continue
        specifier = match.group(1).strip().strip("()")
        installed = core_version()
        if specifier and not version_satisfies(installed, specifier):
            warnings.warn(
                f"plugin package {dist.metadata['Name']} {dist.version} requires graflow-core{specifier}, "
                f"but graflow-core {installed} is installed; it may not work. Install matching versions.",
                PluginVersionWarning,
                stacklevel=2,
            )


# --- the host: typed access for the engine ----------------------------------------------------------


@attrs.frozen
class PluginInfo:
    """What ``graflow plugins`` shows for one registered plugin."""

    name: str
    distribution: str | None
    version: str | None
    hooks: tuple[str, ...]
    provides: tuple[tuple[str, str], ...]  # (kind, name)


class PluginHost:
    """The engine's view of the plugins: resolved name tables and the lifecycle hooks in use."""

    def __init__(self, extra: Iterable[object] = ()) -> None:
        self.distributions: dict[str, importlib.metadata.Distribution] = {}
        self.pm = build_plugin_manager(extra, self.distributions)
        self.registry = Registry()
        for hook_name, kind in REGISTRAR_HOOKS.items():
            caller = getattr(self.pm.hook, hook_name)
            for impl in reversed(caller.get_hookimpls()):  # registration order
                register = self.registry.registrar(kind, impl.plugin_name)
                impl.function(*[{"register": register}[arg] for arg in impl.argnames])
        # Lifecycle hooks nobody implements are None, so the engine skips them per task for free.
        self.lifecycle: dict[str, Any] = {
            name: (getattr(self.pm.hook, name) if getattr(self.pm.hook, name).get_hookimpls() else None)
            for name in LIFECYCLE_HOOKS
        }

    def get(self, kind: str, name: str) -> Registration:
        return self.registry.get(kind, name)

    def names(self, kind: str) -> list[str]:
        return self.registry.names(kind)

    def plugin_infos(self) -> list[PluginInfo]:
        infos = []
        for name, plugin in self.pm.list_name_plugin():
            if plugin is None:
                continue
            dist = self.distributions.get(name)
            hooks = tuple(sorted(h.name for h in self.pm.get_hookcallers(plugin) or []))
            provides = tuple(sorted((r.kind, r.name) for r in self.registry if r.plugin == name))
            if dist is None and name.startswith("graflow.builtin."):
                dist_name: str | None = "graflow-core"
                version: str | None = core_version()
            else:
                dist_name = dist.metadata["Name"] if dist is not None else None
                version = dist.version if dist is not None else None
            infos.append(PluginInfo(name, dist_name, version, hooks, provides))
        return infos


_default_host: PluginHost | None = None


def default_host() -> PluginHost:
    """The process-wide host for engines built without extra plugins (entry points scanned once)."""
    global _default_host
    if _default_host is None:
        _default_host = PluginHost()
    return _default_host


def reset_default_host() -> None:
    """Forget the cached host, e.g. after installing a plugin package in a running process."""
    global _default_host
    _default_host = None
