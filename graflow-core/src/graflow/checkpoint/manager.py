"""CheckpointManager: create, resume, list, delete and prune checkpoints on any store.

The store is chosen by the path's scheme through the checkpoint-store registry (``file`` built in,
``s3`` from graflow-checkpoint-s3, ``redis`` from graflow-redis). Loading a checkpoint unpickles
it, which runs code: resume only from stores you trust, and set a key (config ``secret_key`` or
``GRAFLOW_SECRET_KEY``) to have checkpoints signed when written and verified before loading.
"""

from __future__ import annotations

import mmap
import os
import pickle
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from graflow.checkpoint import codec
from graflow.checkpoint.metadata import CheckpointMetadata
from graflow.checkpoint.snapshot import capture, restore
from graflow.checkpoint.store import Blob, CheckpointStore, normalize_path, part_path, split_scheme
from graflow.exceptions import CheckpointCorruptedError, CheckpointError, CheckpointNotFoundError
from graflow.logs import get_logger

if TYPE_CHECKING:
    from graflow.core.context import ExecutionContext
    from graflow.core.engine import WorkflowEngine
    from graflow.plugins.manager import PluginHost
    from graflow.queue.base import TaskSpec

log = get_logger("graflow.checkpoint")

DEFAULT_DIR = "checkpoints"
CHECKPOINT_DIR_ENV = "GRAFLOW_CHECKPOINT_DIR"

_stores: dict[tuple[int, str, str], tuple[PluginHost, CheckpointStore]] = {}


def _host(engine: WorkflowEngine | None) -> PluginHost:
    if engine is not None:
        return engine.host
    from graflow.plugins.manager import default_host  # lazy: the plugin manager imports this package

    return default_host()


def store_for(path: str, config: Mapping[str, Any] | None = None, host: PluginHost | None = None) -> CheckpointStore:
    """The store for ``path``'s scheme, built once per scheme and config (S3 clients are slow to make).

    An unknown scheme raises UnknownNameError, which lists the installed ones and names the package
    that provides a known one (``pip install graflow-checkpoint-s3`` for ``s3``).
    """
    settings = dict(config or {})
    host = host or _host(None)
    scheme, _ = split_scheme(path)
    registration = host.get("checkpoint store", scheme)
    key = (id(host), scheme, repr(sorted(settings.items())))
    cached = _stores.get(key)
    if cached is not None:
        return cached[1]
    store: CheckpointStore = registration.factory(settings)
    if len(_stores) >= 32:
        _stores.clear()
    _stores[key] = (host, store)  # holding the host keeps its id from being reused
    return store


def reset_stores() -> None:
    """Close and forget the cached stores (after rotating credentials, or between tests)."""
    cached = list(_stores.values())
    _stores.clear()
    for _, store in cached:
        store.close()


def _digests(pkl: bytes, state: bytes) -> dict[str, Any]:
    return {"pkl": codec.file_digest(pkl), "state": codec.file_digest(state)}


def _secret_key(config: Mapping[str, Any]) -> bytes | None:
    from graflow.core.remote import secret_key

    return secret_key(config)


class CheckpointManager:
    """Checkpoints of runs. Every method is a classmethod; ``config`` carries store settings
    (``endpoint_url`` for S3, ``checkpoint_dir``, ``secret_key``) and is merged over the context's."""

    @classmethod
    def default_location(cls, session_id: str, config: Mapping[str, Any] | None = None) -> str:
        """Where checkpoints of a session go without ``path=``: ``<root>/<session_id>``, the root
        being config ``checkpoint_dir``, else ``GRAFLOW_CHECKPOINT_DIR``, else ``./checkpoints``."""
        root = str((config or {}).get("checkpoint_dir") or os.environ.get(CHECKPOINT_DIR_ENV) or DEFAULT_DIR)
        if "://" not in root:
            root = os.path.abspath(root)
        if root.endswith("://"):  # a bare scheme root such as "redis://"
            return root + session_id
        return root.rstrip("/") + "/" + session_id

    @classmethod
    def create_checkpoint(
        cls,
        context: ExecutionContext,
        metadata: Mapping[str, Any] | None = None,
        path: str | None = None,
        *,
        config: Mapping[str, Any] | None = None,
        current_task: TaskSpec | None = None,
        engine: WorkflowEngine | None = None,
    ) -> tuple[str, CheckpointMetadata]:
        """Write a checkpoint of ``context`` and return ``(path, metadata)``.

        ``path`` is the ``.pkl`` path (``.pkl`` is appended when missing; a trailing ``/`` names a
        directory); by default a new file under :meth:`default_location`. ``current_task`` is set by
        ``context.checkpoint(deferred=False)``: that task is re-run first on resume.
        """
        started = time.perf_counter()
        settings = {**context.config, **(config or {})}
        created = datetime.now(UTC)
        checkpoint_id = f"{context.session_id}_{context.steps}_{int(created.timestamp() * 1_000_000)}"
        host = _host(engine)
        if path is None or path.endswith("/"):
            location = path or cls.default_location(context.session_id, settings)
            store = store_for(location, settings, host)
            path = store.join(location, checkpoint_id + ".pkl")
        else:
            path = normalize_path(path)
            store = store_for(path, settings, host)
        user_metadata = dict(metadata or {})
        codec.check_json(user_metadata)
        payload, state = capture(context, current_task)
        import cloudpickle  # lazy: only runs that checkpoint pay for the import

        try:
            pkl = cloudpickle.dumps(payload, protocol=5)
        except Exception as exc:
            raise CheckpointError(
                f"cannot pickle the run for checkpoint {path!r}: {type(exc).__name__}: {exc}. Channel "
                "values, results and iteration data must be picklable (no open files, sockets, locks or "
                "live clients)"
            ) from exc
        state_bytes = codec.encode_state(state)
        meta = CheckpointMetadata(
            checkpoint_id=checkpoint_id,
            session_id=context.session_id,
            created_at=created,
            steps=context.steps,
            path=path,
            start_nodes=tuple(context.start_nodes),
            backend={"queue": context.queue_backend, "channel": context.channel_backend},
            user_metadata=user_metadata,
            resumes_current_task=current_task is not None,
        )
        key = _secret_key(settings)

        def make_meta() -> bytes:  # called by the store, maybe on another thread, while the pickle is written
            return codec.encode_meta(meta, _digests(pkl, state_bytes), key)

        store.write(path, pkl, state_bytes, make_meta)
        context.last_checkpoint_path = path
        context.last_checkpoint_metadata = meta
        log.info(
            "checkpoint_created",
            path=path,
            session_id=context.session_id,
            steps=context.steps,
            size_bytes=len(pkl),
            duration_ms=round((time.perf_counter() - started) * 1000, 3),
        )
        return path, meta

    @classmethod
    def load_metadata(
        cls, path: str, *, config: Mapping[str, Any] | None = None, engine: WorkflowEngine | None = None
    ) -> CheckpointMetadata:
        """The metadata of one checkpoint, signature verified, without loading the run."""
        path = normalize_path(path)
        settings = dict(config or {})
        store = store_for(path, settings, _host(engine))
        metadata, _ = codec.decode_meta(
            store.read_part(path, "meta"), part_path(path, "meta"), path, _secret_key(settings)
        )
        return metadata

    @classmethod
    def resume_from_checkpoint(
        cls, path: str, *, config: Mapping[str, Any] | None = None, engine: WorkflowEngine | None = None
    ) -> tuple[ExecutionContext, CheckpointMetadata]:
        """The run as it was when the checkpoint was written, ready for ``WorkflowEngine().execute``.

        Checks run before anything is unpickled: the meta's schema and signature, then the size and
        digest of the other two files. ``config`` supplies store settings and whatever the
        checkpoint could not keep (secrets, live clients); pass the ``engine`` whose plugins provide
        the run's queue and channel backends when they are not installed as packages.
        """
        started = time.perf_counter()
        path = normalize_path(path)
        settings = dict(config or {})
        host = _host(engine)
        store = store_for(path, settings, host)
        meta_file, state_file, pkl_file = (part_path(path, p) for p in ("meta", "state", "pkl"))
        key = _secret_key(settings)
        metadata, files = codec.decode_meta(store.read_part(path, "meta"), meta_file, path, key)
        state_raw = store.read_part(path, "state")
        codec.verify_file(state_raw, files["state"], state_file)
        # A mapping of the file saves copying it (issue #7, W6), but it would show an in-place write
        # made between the digest check and the load: a signed checkpoint is read into private memory.
        pkl = store.read_part(path, "pkl") if key is not None else store.map_part(path, "pkl")
        try:
            codec.verify_file(pkl, files["pkl"], pkl_file)
            codec.decode_state(state_raw, state_file)
            payload = _unpickle(pkl, pkl_file)
        finally:
            if isinstance(pkl, mmap.mmap):
                pkl.close()
        context = restore(payload, host, settings)
        context.last_checkpoint_path = path
        context.last_checkpoint_metadata = metadata
        log.info(
            "checkpoint_resumed",
            path=path,
            session_id=metadata.session_id,
            steps=metadata.steps,
            pending=len(context.queue),
            duration_ms=round((time.perf_counter() - started) * 1000, 3),
        )
        return context, metadata

    @classmethod
    def list_checkpoints(
        cls, location: str, *, config: Mapping[str, Any] | None = None, engine: WorkflowEngine | None = None
    ) -> list[CheckpointMetadata]:
        """The complete checkpoints directly inside ``location``, oldest first.

        Signatures are not checked here (nothing is loaded); unreadable metas are skipped with a
        warning.
        """
        store = store_for(location, config, _host(engine))
        found = []
        for path in store.list(location):
            meta_file = part_path(path, "meta")
            try:
                metadata, _ = codec.decode_meta(store.read_part(path, "meta"), meta_file, path, None, verify=False)
            except CheckpointNotFoundError:
                continue  # deleted while we listed
            except CheckpointError as exc:
                log.warning("checkpoint_skipped", path=path, error=str(exc))
                continue
            found.append(metadata)
        found.sort(key=lambda m: (m.created_at, m.checkpoint_id))
        return found

    @classmethod
    def delete_checkpoint(
        cls, path: str, *, config: Mapping[str, Any] | None = None, engine: WorkflowEngine | None = None
    ) -> None:
        """Delete a checkpoint's three files (meta first). Deleting a missing checkpoint does nothing."""
        path = normalize_path(path)
        store_for(path, config, _host(engine)).delete(path)
        log.info("checkpoint_deleted", path=path)

    @classmethod
    def prune(
        cls,
        location: str,
        keep_last: int,
        *,
        config: Mapping[str, Any] | None = None,
        engine: WorkflowEngine | None = None,
    ) -> list[str]:
        """Delete all but the ``keep_last`` newest checkpoints in ``location``; returns the deleted paths."""
        if keep_last < 0:
            raise ValueError(f"keep_last must be >= 0, got {keep_last}")
        checkpoints = cls.list_checkpoints(location, config=config, engine=engine)
        doomed = checkpoints[: max(0, len(checkpoints) - keep_last)]
        store = store_for(location, config, _host(engine))
        for metadata in doomed:
            store.delete(metadata.path)
        if doomed:
            log.info(
                "checkpoints_pruned",
                location=location,
                deleted=len(doomed),
                kept=len(checkpoints) - len(doomed),
            )
        return [m.path for m in doomed]


def _unpickle(pkl: Blob, file: str) -> dict[str, Any]:
    try:
        payload = pickle.loads(pkl)
    except (ImportError, AttributeError) as exc:
        raise CheckpointError(
            f"{file} refers to code that cannot be imported now ({type(exc).__name__}: {exc}). Tasks "
            "defined in modules are stored by reference (module + name): make that module importable "
            "before resuming"
        ) from exc
    except Exception as exc:
        raise CheckpointCorruptedError(f"{file} cannot be unpickled ({type(exc).__name__}: {exc}): corrupted") from exc
    if not isinstance(payload, dict) or "graph" not in payload:
        raise CheckpointCorruptedError(f"{file} does not hold a Graflow run (found {type(payload).__name__})")
    return payload
