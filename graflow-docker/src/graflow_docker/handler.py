"""DockerTaskHandler: each execution of a task runs in a fresh container, its effects land on the host.

One run: resolve the task's arguments and snapshot the channel here, write them with the function
(cloudpickle) into a private temp dir mounted at ``/graflow-io``, run ``_runner.py`` there with the
image's Python, wait, read the outcome, remove the container (always, in ``finally``), then apply
the outcome: channel journal, ``next_task``/``next_iteration``, the result or the exception.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from graflow.channels.views import apply_channel_ops
from graflow.core.context import TaskExecutionContext, current_task_context
from graflow.core.handler import TaskHandler
from graflow.exceptions import TaskTimeoutError
from graflow.logs import get_logger
from graflow_docker import _cleanup
from graflow_docker._protocol import Outcome, ShippingRules, read_outcome, read_private, write_request
from graflow_docker.errors import (
    ContainerOOMError,
    ContainerStartError,
    DockerImageMismatchError,
    DockerImageNotFoundError,
    DockerUnavailableError,
    TaskLoadError,
)
from graflow_docker.options import MANAGED_LABEL, ContainerOptions, create_kwargs, resolve_image

if TYPE_CHECKING:
    from graflow.channels.base import Channel
    from graflow.core.context import ExecutionContext
    from graflow.core.task import TaskWrapper

log = get_logger("graflow.docker")

SIGKILL_EXIT = 137


@attrs.frozen
class _Exit:
    """How a container that wrote no outcome ended. ``oom`` is ``None`` when Docker no longer knows."""

    code: int
    oom: bool | None = False
    logs: str = ""


class DockerTaskHandler(TaskHandler):
    """Runs tasks in containers of ``image``, which needs only Python (the host's major.minor) and
    the host's cloudpickle version: Graflow itself is not needed inside (see ``_runner.py``).

    Register named variants with ``engine.register_handler("py311", DockerTaskHandler(image=...))``;
    the ``docker`` handler name comes from the plugin, with its image from the engine config
    ``docker_image`` or ``GRAFLOW_DOCKER_IMAGE``. The options are :class:`ContainerOptions` fields.

    ``@task(timeout=...)`` is enforced here: each attempt's container is killed at the shorter of
    the task's timeout and the handler's own ``timeout``, with ``TaskTimeoutError``.
    """

    supports_timeout = True
    enforces_timeout = True

    def __init__(
        self,
        image: str | None = None,
        *,
        environment: Mapping[str, str] | None = None,
        volumes: Mapping[str, Mapping[str, str]] | Sequence[str] | None = None,
        device_requests: Sequence[Any] | None = None,
        network_mode: str | None = None,
        mem_limit: str | int | None = None,
        cpus: float | None = None,
        cpu_period: int | None = None,
        cpu_quota: int | None = None,
        cpu_shares: int | None = None,
        cpuset_cpus: str | None = None,
        working_dir: str | None = None,
        user: str | int | None = None,
        timeout: float | None = None,
        auto_remove: bool = False,
        labels: Mapping[str, str] | None = None,
        run_options: Mapping[str, Any] | None = None,
        python: str = "python3",
        safe_output: bool = False,
        forward_output: bool = True,
        by_value_modules: Sequence[str] = (),
        by_reference_modules: Sequence[str] = (),
        client: Any = None,
    ) -> None:
        options = ContainerOptions(
            image=resolve_image(image),
            environment=environment,
            volumes=volumes,
            device_requests=device_requests,
            network_mode=network_mode,
            mem_limit=mem_limit,
            cpus=cpus,
            cpu_period=cpu_period,
            cpu_quota=cpu_quota,
            cpu_shares=cpu_shares,
            cpuset_cpus=cpuset_cpus,
            working_dir=working_dir,
            user=user,
            timeout=timeout,
            auto_remove=auto_remove,
            labels=labels,
            run_options=run_options,
            python=python,
            safe_output=safe_output,
            forward_output=forward_output,
            by_value_modules=by_value_modules,
            by_reference_modules=by_reference_modules,
        )
        self._setup(options, client)

    @classmethod
    def from_options(cls, options: ContainerOptions, client: Any = None) -> DockerTaskHandler:
        handler = cls.__new__(cls)
        handler._setup(options, client)
        return handler

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> DockerTaskHandler:
        """The plugin's ``docker`` handler: ``docker_*`` keys of the engine config (see ContainerOptions)."""
        return cls.from_options(ContainerOptions.from_config(config))

    def _setup(self, options: ContainerOptions, client: Any) -> None:
        self.options = options
        self._rules = ShippingRules(options.by_value_modules, options.by_reference_modules)
        self._client = client
        self._lock = threading.Lock()
        self._images_present: set[str] = set()
        _cleanup.install_interrupt_hook()

    def __getstate__(self) -> dict[str, Any]:
        # Shipped to worker processes along with a request: the settings travel, the client does not.
        return {"options": self.options}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._setup(state["options"], None)

    def __repr__(self) -> str:
        return f"DockerTaskHandler(image={self.options.image!r})"

    # --- preflight ---------------------------------------------------------------------------------

    def docker_client(self) -> Any:
        """The docker-py client, connected and pinged once; DockerUnavailableError when no daemon answers."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = _connect()
        return self._client

    def check_image(self) -> None:
        """Fail before running anything when the image is not in the local engine (never pulls)."""
        image = self.options.image
        if image in self._images_present:
            return
        import docker.errors

        try:
            self.docker_client().images.get(image)
        except docker.errors.ImageNotFound:
            raise DockerImageNotFoundError(image) from None
        except docker.errors.DockerException as exc:
            raise DockerUnavailableError(f"Docker failed while looking up image {image!r}: {exc}") from exc
        self._images_present.add(image)

    # --- execution ---------------------------------------------------------------------------------

    def execute_task(self, task: TaskWrapper, context: ExecutionContext) -> Any:
        tctx = current_task_context(task.task_id)
        _cleanup.install_interrupt_hook()
        self.check_image()
        kwargs = task.resolve_kwargs(tctx)
        channel = tctx.get_channel()
        safe = self.options.safe_output
        started = time.perf_counter()
        tmp = tempfile.mkdtemp(prefix="graflow-docker-")
        try:
            # The container writes here as whatever user it runs as; the 0700 parent keeps others out.
            io_dir = os.path.join(tmp, "io")
            os.mkdir(io_dir)
            os.chmod(io_dir, 0o777)
            tasks = write_request(
                io_dir,
                task=task,
                session_id=tctx.session_id,
                cycle=tctx.cycle_count,
                kwargs=kwargs,
                channel=channel.items(),
                rules=self._rules,
                json_output=safe,
            )
            ended = self._run_container(task.task_id, tctx.session_id, io_dir, self._timeout_for(task))
            outcome = read_outcome(io_dir, task.task_id, tasks, safe) if ended is None else None
        finally:
            if self.options.forward_output:
                _forward_output(os.path.join(tmp, "io"))
            stderr_tail = _tail(os.path.join(tmp, "io", "stderr"))
            shutil.rmtree(tmp, ignore_errors=True)
        log.debug(
            "docker_task_finished",
            task_id=task.task_id,
            image=self.options.image,
            duration_s=round(time.perf_counter() - started, 4),
            status=outcome.status if outcome is not None else "no-outcome",
        )
        if outcome is None:
            raise self._no_outcome_error(task.task_id, ended or _Exit(-1), stderr_tail)
        return self._apply(outcome, task.task_id, tctx, channel)

    def _timeout_for(self, task: TaskWrapper) -> float | None:
        """The container's deadline: the handler's ``timeout`` or the task's (``@task(timeout=)``), the shorter."""
        options = getattr(task, "attempts", None)
        limits = [t for t in (self.options.timeout, getattr(options, "timeout", None)) if t is not None]
        return min(limits) if limits else None

    def _run_container(self, task_id: str, session_id: str, io_dir: str, timeout: float | None) -> _Exit | None:
        """Create, start, wait, remove. ``None`` when the runner wrote its outcome."""
        import docker.errors
        import requests.exceptions

        client = self.docker_client()
        image = self.options.image
        call = uuid.uuid4().hex
        labels = {
            MANAGED_LABEL: str(os.getpid()),
            "graflow.task": task_id,
            "graflow.session": session_id,
            "graflow.call": call,
        }
        container = None
        try:
            container = client.containers.create(**create_kwargs(self.options, io_dir, labels))
            _cleanup.track(container)
            container.start()
            try:
                status = container.wait(timeout=timeout)
            except requests.exceptions.RequestException as exc:
                if timeout is None:
                    raise DockerUnavailableError(f"lost the Docker daemon while task {task_id!r} ran: {exc}") from exc
                if os.path.exists(os.path.join(io_dir, "out")):
                    return None  # the task had returned; what outlived it is removed with the container
                raise TaskTimeoutError(
                    f"task {task_id!r} ran longer than its Docker timeout of {timeout}s "
                    f"(image {image!r}); its container was killed and removed"
                ) from None
            if os.path.exists(os.path.join(io_dir, "out")):
                return None
            if _cleanup.untrack(container):
                raise _interrupted(task_id, image)
            return _post_mortem(container, int(status.get("StatusCode", -1)))
        except docker.errors.ImageNotFound:
            self._images_present.discard(image)
            raise DockerImageNotFoundError(image) from None
        except docker.errors.APIError as exc:
            if container is not None and _cleanup.untrack(container):
                raise _interrupted(task_id, image) from None
            detail = str(exc.explanation or exc)
            if "executable file not found" in detail or "no such file" in detail:
                detail += f". The image must have {self.options.python!r} on its PATH (option python=...)"
            raise ContainerStartError(
                f"Docker could not run task {task_id!r} in image {image!r}: {detail}", image
            ) from exc
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise DockerUnavailableError(f"Docker failed while running task {task_id!r}: {exc}") from exc
        finally:
            if container is not None:
                _cleanup.remove_quietly(container)
                _cleanup.untrack(container)
            else:  # create() was interrupted: the daemon may have made the container anyway
                _remove_labelled(client, call)

    def _no_outcome_error(self, task_id: str, ended: _Exit, stderr_tail: str) -> Exception:
        options = self.options
        if ended.oom or (ended.oom is None and ended.code == SIGKILL_EXIT and options.mem_limit is not None):
            return ContainerOOMError(task_id, options.image, options.mem_limit, certain=bool(ended.oom))
        output = "\n".join(part for part in (ended.logs.strip(), stderr_tail.strip()) if part)
        return ContainerStartError(
            f"the container of task {task_id!r} (image {options.image!r}) exited with code {ended.code} "
            f"without reporting a result" + (f"; its output ends with:\n{output}" if output else ""),
            options.image,
            ended.code,
            output,
        )

    def _apply(self, outcome: Outcome, task_id: str, tctx: TaskExecutionContext, channel: Channel) -> Any:
        """Make the container's requests happen on the host, as a direct task's would have."""
        image = self.options.image
        if outcome.problem is not None:
            problem = outcome.problem
            raise DockerImageMismatchError(
                image, str(problem.get("component")), str(problem.get("host")), problem.get("image")
            )
        if outcome.channel_ops:  # also after a failure: a direct task's writes stay too
            apply_channel_ops(channel, outcome.channel_ops)
        if outcome.dropped:
            log.warning("docker_outcome_incomplete", task_id=task_id, detail=outcome.dropped)
        error = outcome.error
        if error is not None:
            if outcome.status == "load-error":
                error = TaskLoadError(task_id, image, str(error))
            if outcome.traceback:
                error.add_note(f"Traceback inside the Docker container (image {image}):\n{outcome.traceback.rstrip()}")
            raise error
        for next_task, goto in outcome.next_tasks:
            tctx.next_task(next_task, goto=goto)
        if outcome.iterate is not None:
            tctx.next_iteration(*outcome.iterate)
        if outcome.control is not None:
            kind, message = outcome.control
            if kind == "cancel":
                tctx.cancel_workflow(message)
            else:
                tctx.terminate_workflow(message)
        if outcome.checkpoint is not None:  # the container's last deferred request
            metadata, path = outcome.checkpoint
            tctx.checkpoint(metadata, deferred=True, path=path)
        return outcome.result


def _interrupted(task_id: str, image: str) -> ContainerStartError:
    return ContainerStartError(
        f"the container of task {task_id!r} was removed because the host run was interrupted", image
    )


def _connect() -> Any:
    try:
        import docker

        client = docker.from_env()
        client.ping()
    except Exception as exc:
        where = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        raise DockerUnavailableError(
            f"no Docker daemon answers at {where} ({type(exc).__name__}: {exc}). Start one "
            "(`bash scripts/services.sh` in the Graflow repo, or `sudo systemctl start docker`), or set "
            "DOCKER_HOST."
        ) from exc
    return client


def _post_mortem(container: Any, code: int) -> _Exit:
    """Why a container ended without an outcome: the OOM flag and its last log lines."""
    oom: bool | None = None
    try:
        container.reload()
        oom = bool(container.attrs.get("State", {}).get("OOMKilled"))
        logs = container.logs(tail=20).decode(errors="replace")
    except Exception:  # auto_remove=True: Docker already forgot it
        logs = ""
    return _Exit(code, oom, logs)


def _remove_labelled(client: Any, call: str) -> None:
    try:
        found = client.containers.list(all=True, filters={"label": f"graflow.call={call}"})
    except Exception:
        return
    for container in found:
        _cleanup.remove_quietly(container)


def _forward_output(io_dir: str) -> None:
    """The task's prints, shown where a direct task's would be (the task's output, not ours)."""
    for name, stream in (("stdout", sys.stdout), ("stderr", sys.stderr)):
        data = read_private(os.path.join(io_dir, name))
        if data:
            stream.write(data.decode(errors="replace"))
            stream.flush()


def _tail(path: str, limit: int = 2000) -> str:
    data = read_private(path) or b""
    return data[-limit:].decode(errors="replace")
