"""Values stored in Redis (channel values, ready-queue entries): cloudpickle, signed when a key is set.

Loading a pickle runs code, so with a key (config ``secret_key`` or ``GRAFLOW_SECRET_KEY``) every
pickled value carries an HMAC-SHA256 and one without a valid signature is refused, never loaded,
like task payloads (:mod:`graflow.core.remote`). Integers are stored as plain decimal text instead,
so ``HINCRBY`` can add to them atomically.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import cloudpickle

from graflow.exceptions import PayloadRejectedError

SIGNED = b"S"
PICKLE = b"\x80"  # every cloudpickle output starts with the PROTO opcode


def encode(value: Any, key: bytes | None) -> bytes:
    if type(value) is int:
        return str(value).encode()
    body: bytes = cloudpickle.dumps(value)
    if key is None:
        return body
    return SIGNED + hmac.new(key, body, hashlib.sha256).digest() + body


def decode(raw: bytes | str, key: bytes | None, where: str) -> Any:
    if isinstance(raw, str):  # only from a client that decodes responses, which we never build
        raw = raw.encode()
    head = raw[:1]
    if head == SIGNED:
        if key is None:
            raise PayloadRejectedError(
                f"{where} is signed but this process has no key; set GRAFLOW_SECRET_KEY like its writer"
            )
        digest, body = raw[1:33], raw[33:]
        if not hmac.compare_digest(digest, hmac.new(key, body, hashlib.sha256).digest()):
            raise PayloadRejectedError(f"{where} has a bad signature (tampered, or signed with another key)")
        return cloudpickle.loads(body)
    if head == PICKLE:
        if key is not None:
            raise PayloadRejectedError(f"{where} is unsigned but a secret key is set here; refusing to load it")
        return cloudpickle.loads(raw)
    return int(raw)
