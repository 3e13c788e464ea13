"""What a Docker handler asks of its containers: image, environment, mounts, limits, timeout."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from graflow_docker._runner import BOOT_CODE

IMAGE_ENV = "GRAFLOW_DOCKER_IMAGE"
IO_MOUNT = "/graflow-io"
MANAGED_LABEL = "graflow.docker"
"""Every container graflow-docker starts carries this label (value: the host's pid)."""

# Arguments the handler sets itself: passing them through run_options would break the protocol.
_RESERVED = frozenset({"image", "command", "entrypoint", "detach", "remove", "stdout", "stderr", "stream"})
# Arguments with an option of their own, which the handler merges with what it needs (its I/O mount,
# its labels): through run_options they would be overwritten, silently.
_AS_OPTIONS = {
    "environment": "environment",
    "volumes": "volumes",
    "device_requests": "device_requests",
    "network_mode": "network_mode",
    "mem_limit": "mem_limit",
    "nano_cpus": "cpus",
    "cpu_period": "cpu_period",
    "cpu_quota": "cpu_quota",
    "cpu_shares": "cpu_shares",
    "cpuset_cpus": "cpuset_cpus",
    "working_dir": "working_dir",
    "user": "user",
    "auto_remove": "auto_remove",
    "labels": "labels",
}
"""run_options key -> the handler option to use instead."""


def _positive_or_none(instance: Any, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and value <= 0:
        raise ValueError(f"{attribute.name} must be > 0 seconds or None, got {value!r}")


def _no_reserved(instance: Any, attribute: attrs.Attribute[Any], value: Mapping[str, Any]) -> None:
    clash = sorted(_RESERVED & set(value))
    if clash:
        raise ValueError(f"run_options may not set {clash}: the handler sets them (use the image= option)")
    own = sorted(set(_AS_OPTIONS) & set(value))
    if own:
        raise ValueError(
            f"run_options may not set {own}: pass them as the handler's own options "
            f"({', '.join(_AS_OPTIONS[name] + '=' for name in own)}), which it merges with its own mounts and labels"
        )


def _dict(value: Mapping[str, Any] | None) -> dict[str, Any]:
    return dict(value or {})


def _names(value: Sequence[str] | str) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


@attrs.frozen
class ContainerOptions:
    """The settings of one handler; ``DockerTaskHandler(**fields)`` builds it.

    ``volumes`` and ``device_requests`` use docker-py's forms; ``run_options`` passes any other
    ``containers.run`` argument through (``cap_drop``, ``read_only``, ``pids_limit``, ...).
    """

    image: str
    environment: Mapping[str, str] = attrs.field(factory=dict, converter=_dict)
    volumes: Mapping[str, Mapping[str, str]] | Sequence[str] | None = None
    device_requests: Sequence[Any] | None = None
    network_mode: str | None = None
    mem_limit: str | int | None = None
    cpus: float | None = attrs.field(default=None, validator=_positive_or_none)
    cpu_period: int | None = None
    cpu_quota: int | None = None
    cpu_shares: int | None = None
    cpuset_cpus: str | None = None
    working_dir: str | None = None
    user: str | int | None = None
    timeout: float | None = attrs.field(default=None, validator=_positive_or_none)
    auto_remove: bool = False
    labels: Mapping[str, str] = attrs.field(factory=dict, converter=_dict)
    run_options: Mapping[str, Any] = attrs.field(factory=dict, converter=_dict, validator=_no_reserved)
    python: str = "python3"
    safe_output: bool = False
    forward_output: bool = True
    by_value_modules: tuple[str, ...] = attrs.field(default=(), converter=_names)
    by_reference_modules: tuple[str, ...] = attrs.field(default=(), converter=_names)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ContainerOptions:
        """Options from an engine config: ``docker_image`` (else ``GRAFLOW_DOCKER_IMAGE``) and any
        other field prefixed ``docker_`` (``docker_timeout``, ``docker_mem_limit``, ...)."""
        fields = {a.name for a in attrs.fields(cls)}
        chosen = {k[len("docker_") :]: v for k, v in config.items() if k.startswith("docker_")}
        unknown = sorted(set(chosen) - fields)
        if unknown:
            raise ValueError(
                f"unknown Docker handler settings {['docker_' + u for u in unknown]}; "
                f"known: {sorted('docker_' + f for f in fields)}"
            )
        chosen["image"] = resolve_image(chosen.get("image"))
        return cls(**chosen)


def resolve_image(image: str | None) -> str:
    """The image to use: the one given, else ``GRAFLOW_DOCKER_IMAGE``; an error saying how to get one."""
    chosen = image or os.environ.get(IMAGE_ENV)
    if not chosen:
        raise ValueError(
            "the Docker handler needs an image: pass DockerTaskHandler(image=...), set the engine config "
            f"docker_image, or set {IMAGE_ENV}. `bash scripts/build-test-image.sh` builds a test image "
            "and prints its name."
        )
    return chosen


def create_kwargs(options: ContainerOptions, io_dir: str, labels: Mapping[str, str]) -> dict[str, Any]:
    """The ``containers.create`` arguments for one task run."""
    kwargs: dict[str, Any] = dict(options.run_options)
    kwargs.update(
        image=options.image,
        # -B: no __pycache__ in the shared directory (root-owned files the host could not delete).
        command=[options.python, "-B", "-c", BOOT_CODE, IO_MOUNT],
        labels={**options.labels, **labels},
        volumes=_volumes(options.volumes, io_dir),
        auto_remove=options.auto_remove,
    )
    if options.environment:
        kwargs["environment"] = dict(options.environment)
    optional = {
        "device_requests": options.device_requests,
        "network_mode": options.network_mode,
        "mem_limit": options.mem_limit,
        "cpu_period": options.cpu_period,
        "cpu_quota": options.cpu_quota,
        "cpu_shares": options.cpu_shares,
        "cpuset_cpus": options.cpuset_cpus,
        "working_dir": options.working_dir,
        "user": options.user,
    }
    kwargs.update({k: v for k, v in optional.items() if v is not None})
    if options.cpus is not None:
        kwargs["nano_cpus"] = int(options.cpus * 1e9)
    return kwargs


def _volumes(
    volumes: Mapping[str, Mapping[str, str]] | Sequence[str] | None, io_dir: str
) -> dict[str, Any] | list[str]:
    if volumes is None:
        return {io_dir: {"bind": IO_MOUNT, "mode": "rw"}}
    if isinstance(volumes, Mapping):
        return {**{k: dict(v) for k, v in volumes.items()}, io_dir: {"bind": IO_MOUNT, "mode": "rw"}}
    return [*volumes, f"{io_dir}:{IO_MOUNT}:rw"]
