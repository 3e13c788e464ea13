"""Name tables: what each plugin registered, and the errors for names nobody registered."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol

import attrs

from graflow.exceptions import DuplicateNameError, UnknownNameError

# Names that the first-party packages provide, so an unknown name can say what to install.
KNOWN_PROVIDERS: dict[tuple[str, str], str] = {
    ("queue backend", "redis"): "graflow-redis",
    ("channel backend", "redis"): "graflow-redis",
    ("coordination backend", "redis"): "graflow-redis",
    ("checkpoint store", "redis"): "graflow-redis",
    ("handler", "docker"): "graflow-docker",
    ("checkpoint store", "s3"): "graflow-checkpoint-s3",
    ("cache store", "redis"): "graflow-redis",
}

KINDS = (
    "handler",
    "queue backend",
    "channel backend",
    "coordination backend",
    "policy",
    "checkpoint store",
    "cache store",
)


class Registrar(Protocol):
    """The ``register`` callback a registrar hook receives."""

    def __call__(self, name: str, factory: Callable[..., Any]) -> None: ...


@attrs.frozen
class Registration:
    """One name offered by one plugin."""

    kind: str
    name: str
    factory: Callable[..., Any]
    plugin: str


@attrs.define
class Registry:
    """Every name registered for one engine, by kind."""

    tables: dict[str, dict[str, Registration]] = attrs.field(factory=lambda: {kind: {} for kind in KINDS})

    def registrar(self, kind: str, plugin: str) -> Registrar:
        table = self.tables[kind]

        def register(name: str, factory: Callable[..., Any]) -> None:
            if not isinstance(name, str) or not name:
                raise ValueError(f"plugin {plugin!r} registered a {kind} with an invalid name {name!r}")
            previous = table.get(name)
            if previous is not None:
                raise DuplicateNameError(
                    f"{kind} {name!r} is registered twice: by plugin {previous.plugin!r} and by "
                    f"plugin {plugin!r}. Uninstall one, or block one with GRAFLOW_DISABLE_PLUGINS."
                )
            table[name] = Registration(kind, name, factory, plugin)

        return register

    def get(self, kind: str, name: str) -> Registration:
        table = self.tables[kind]
        try:
            return table[name]
        except KeyError:
            raise unknown_name(kind, name, table) from None

    def names(self, kind: str) -> list[str]:
        return sorted(self.tables[kind])

    def __iter__(self) -> Iterator[Registration]:
        for table in self.tables.values():
            yield from table.values()


def unknown_name(kind: str, name: str, available: dict[str, Any] | list[str]) -> UnknownNameError:
    provider = KNOWN_PROVIDERS.get((kind, name))
    hint = f"{kind.capitalize()} {name!r} is provided by {provider}: pip install {provider}." if provider else ""
    return UnknownNameError(kind, name, list(available), hint)
