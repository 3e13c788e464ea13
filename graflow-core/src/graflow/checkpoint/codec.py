"""The checkpoint file format: the two JSON files, the digests that bind the three, the HMAC.

``.meta.json`` is the commit record. It carries the size and BLAKE3 digest of ``.pkl`` and
``.state.json``, so a truncated, corrupted or swapped file is refused before anything is unpickled;
with a key it also carries an HMAC-SHA256 over its own canonical JSON (which includes those
digests), so one signature covers all three files at the cost of hashing a few hundred bytes.
Every refusal names the file and says why.

Why BLAKE3: it is a cryptographic hash like SHA-256 (an unsigned checkpoint whose pickle was
swapped is still refused, since no other content has the recorded digest), and it hashes 1 MiB in
~0.11 ms here against ~0.53 ms for SHA-256 even with the CPU's SHA instructions: on a resume that
was more than half the time (performance issue #7, W6). Checkpoints of schema 1 recorded SHA-256
digests and are still read.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from blake3 import blake3

from graflow.checkpoint.metadata import CheckpointMetadata
from graflow.checkpoint.store import Blob
from graflow.exceptions import CheckpointCorruptedError, CheckpointError, CheckpointVersionError

SCHEMA_VERSION = 2
"""Bumped when a file's layout changes incompatibly; a reader refuses anything newer than it knows.
2: file digests are BLAKE3 (``"blake3"``) instead of SHA-256 (``"sha256"``)."""

SIGNATURE_ALGORITHM = "hmac-sha256"

DIGEST_ALGORITHM = "blake3"
"""What new checkpoints record; :data:`DIGESTS` is what a reader can check."""

DIGESTS: dict[str, Callable[[Blob], str]] = {
    "blake3": lambda data: blake3(data).hexdigest(),
    "sha256": lambda data: hashlib.sha256(data).hexdigest(),  # schema 1
}
_DIGEST_NAMES = {"blake3": "BLAKE3", "sha256": "SHA-256"}


def file_digest(data: bytes) -> dict[str, Any]:
    return {"size": len(data), DIGEST_ALGORITHM: DIGESTS[DIGEST_ALGORITHM](data)}


def _canonical(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _sign(key: bytes, body: Mapping[str, Any]) -> str:
    return hmac.new(key, _canonical(body), hashlib.sha256).hexdigest()


def format_time(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


# --- writing ------------------------------------------------------------------------------------


def check_json(user_metadata: Mapping[str, Any]) -> None:
    """Fail before anything is written when the caller's metadata cannot go into the meta file."""
    try:
        json.dumps(user_metadata)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(
            f"checkpoint metadata must be JSON-serializable, since it is written to the .meta.json file: {exc}"
        ) from exc


def encode_state(state: Mapping[str, Any]) -> bytes:
    return json.dumps({"schema_version": SCHEMA_VERSION, **state}, separators=(",", ":")).encode()


def encode_meta(metadata: CheckpointMetadata, digests: Mapping[str, Any], key: bytes | None) -> bytes:
    body: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "checkpoint_id": metadata.checkpoint_id,
        "session_id": metadata.session_id,
        "created_at": format_time(metadata.created_at),
        "steps": metadata.steps,
        "start_node": metadata.start_node,
        "start_nodes": list(metadata.start_nodes),
        "backend": dict(metadata.backend),
        "resumes_current_task": metadata.resumes_current_task,
        "user_metadata": metadata.user_metadata,
        "files": dict(digests),
    }
    if key is not None:
        body["signature"] = {"algorithm": SIGNATURE_ALGORITHM, "value": _sign(key, body)}
    return json.dumps(body, indent=1, sort_keys=True).encode()


# --- reading ------------------------------------------------------------------------------------


def _load_json(raw: bytes, file: str) -> dict[str, Any]:
    try:
        loaded = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointCorruptedError(f"{file} is not valid JSON ({exc}): the checkpoint is corrupted") from None
    if not isinstance(loaded, dict):
        raise CheckpointCorruptedError(f"{file} holds a JSON {type(loaded).__name__}, not an object: corrupted")
    return loaded


def _check_version(doc: Mapping[str, Any], file: str) -> None:
    version = doc.get("schema_version")
    if not isinstance(version, int):
        raise CheckpointCorruptedError(f"{file} has no integer schema_version: not a Graflow checkpoint, or corrupted")
    if version > SCHEMA_VERSION:
        raise CheckpointVersionError(
            f"{file} was written with checkpoint schema {version}, but this graflow-core reads schemas up to "
            f"{SCHEMA_VERSION}: upgrade graflow-core to resume it"
        )


def _verify_signature(doc: dict[str, Any], key: bytes | None, file: str) -> None:
    signature = doc.pop("signature", None)
    if signature is None:
        if key is not None:
            raise CheckpointCorruptedError(
                f"{file} is not signed, but a secret key is set (config secret_key or GRAFLOW_SECRET_KEY); "
                "refusing to load an unsigned checkpoint"
            )
        return
    if key is None:
        raise CheckpointCorruptedError(
            f"{file} is signed, but no secret key is set here; set GRAFLOW_SECRET_KEY (or pass "
            "config={'secret_key': ...}) to the key it was written with"
        )
    value = signature.get("value") if isinstance(signature, dict) else None
    if signature.get("algorithm") != SIGNATURE_ALGORITHM or not isinstance(value, str):
        raise CheckpointCorruptedError(f"{file} has a malformed signature entry: {signature!r}")
    if not hmac.compare_digest(value, _sign(key, doc)):
        raise CheckpointCorruptedError(
            f"{file} signature does not match: the checkpoint was tampered with, or signed with another key"
        )


def decode_meta(
    raw: bytes, file: str, path: str, key: bytes | None, *, verify: bool = True
) -> tuple[CheckpointMetadata, dict[str, dict[str, Any]]]:
    """The metadata and the expected digests of the other files, after the version check and (unless
    ``verify`` is false, for listings that load nothing) the signature check."""
    doc = _load_json(raw, file)
    _check_version(doc, file)
    if verify:
        _verify_signature(doc, key, file)
    else:
        doc.pop("signature", None)
    try:
        created = datetime.fromisoformat(doc["created_at"])
        metadata = CheckpointMetadata(
            checkpoint_id=str(doc["checkpoint_id"]),
            session_id=str(doc["session_id"]),
            created_at=created,
            steps=int(doc["steps"]),
            path=path,
            start_nodes=tuple(doc.get("start_nodes") or ()),
            backend=dict(doc.get("backend") or {}),
            user_metadata=dict(doc.get("user_metadata") or {}),
            resumes_current_task=bool(doc.get("resumes_current_task", False)),
            schema_version=int(doc["schema_version"]),
        )
        files = {part: _expected(doc["files"][part]) for part in ("pkl", "state")}
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointCorruptedError(f"{file} lacks or mangles field {exc}: the checkpoint is corrupted") from None
    return metadata, files


def _expected(entry: Mapping[str, Any]) -> dict[str, Any]:
    """One file's recorded size and digest, under whichever known algorithm the meta used."""
    for algorithm in DIGESTS:
        if algorithm in entry:
            return {"size": int(entry["size"]), "algorithm": algorithm, "digest": str(entry[algorithm])}
    raise KeyError(f"digest (one of {', '.join(DIGESTS)})")


def verify_file(data: Blob, expected: Mapping[str, Any], file: str) -> None:
    """Refuse ``data`` unless its size and digest are the ones the meta recorded."""
    size = int(expected["size"])
    if len(data) != size:
        what = "truncated" if len(data) < size else "longer than written"
        raise CheckpointCorruptedError(f"{file} is {what}: {len(data)} bytes, the meta recorded {size}")
    algorithm = expected["algorithm"]
    if DIGESTS[algorithm](data) != expected["digest"]:
        raise CheckpointCorruptedError(
            f"{file} does not match the {_DIGEST_NAMES[algorithm]} digest in its meta: "
            "the file was corrupted or modified"
        )


def decode_state(raw: bytes, file: str) -> dict[str, Any]:
    doc = _load_json(raw, file)
    _check_version(doc, file)
    return doc
