"""S3CheckpointStore: a checkpoint's three files as three objects under one prefix.

``s3://bucket/runs/ckpt.pkl`` is stored as the keys ``runs/ckpt.pkl``, ``runs/ckpt.state.json`` and
``runs/ckpt.meta.json``. Each PUT is atomic on its own; the meta is written last and deleted first,
and a listing shows only checkpoints whose meta exists, so a crash mid-write leaves nothing visible.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from graflow.checkpoint.store import SUFFIXES, CheckpointStore, Part, part_path, split_scheme
from graflow.exceptions import CheckpointError, CheckpointNotFoundError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

CLIENT_OPTIONS = (
    "endpoint_url",
    "region_name",
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
)
"""Config keys passed to ``boto3`` as they are; anything unset comes from boto3's usual chain
(``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``~/.aws/config``, instance roles, ...)."""

_MISSING_CODES = {"NoSuchKey", "404", "NotFound", "NoSuchBucket"}


def split_s3(path: str) -> tuple[str, str]:
    """``("bucket", "prefix/key")`` from ``s3://bucket/prefix/key``."""
    scheme, rest = split_scheme(path)
    bucket, _, key = rest.partition("/")
    if scheme != "s3" or not bucket:
        raise CheckpointError(f"not an S3 checkpoint location: {path!r}; expected s3://bucket/prefix")
    return bucket, key


class S3CheckpointStore(CheckpointStore):
    """Checkpoints in an S3 (or S3-compatible) bucket."""

    def __init__(self, client: S3Client) -> None:
        self.client = client

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> S3CheckpointStore:
        """A store with its own client: config ``s3_client`` (a ready boto3 client), else one built
        from ``aws_profile`` and the :data:`CLIENT_OPTIONS` keys present in ``config``."""
        client = config.get("s3_client")
        if client is None:
            session = boto3.session.Session(profile_name=config.get("aws_profile"))
            options = {name: config[name] for name in CLIENT_OPTIONS if config.get(name)}
            client = session.client("s3", **options)
        return cls(client)

    def _fail(self, action: str, path: str, exc: Exception) -> CheckpointError:
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code, message = error.get("Code", "?"), error.get("Message", str(exc))
            return CheckpointError(f"S3 {action} of {path!r} failed: {code}: {message}")
        return CheckpointError(f"S3 {action} of {path!r} failed: {type(exc).__name__}: {exc}")

    def write_part(self, path: str, part: Part, data: bytes) -> None:
        target = part_path(path, part)
        bucket, key = split_s3(target)
        try:
            self.client.put_object(Bucket=bucket, Key=key, Body=data)
        except (BotoCoreError, ClientError) as exc:
            raise self._fail("write", target, exc) from exc

    def read_part(self, path: str, part: Part) -> bytes:
        target = part_path(path, part)
        bucket, key = split_s3(target)
        try:
            return self.client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING_CODES:
                what = "meta" if part == "meta" else "file"
                raise CheckpointNotFoundError(
                    f"checkpoint {what} {target!r} is missing"
                    + (" (no checkpoint there, or its write never finished)" if part == "meta" else "")
                ) from None
            raise self._fail("read", target, exc) from exc
        except BotoCoreError as exc:
            raise self._fail("read", target, exc) from exc

    def delete_part(self, path: str, part: Part) -> None:
        target = part_path(path, part)
        bucket, key = split_s3(target)
        try:
            self.client.delete_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in _MISSING_CODES:
                raise self._fail("delete", target, exc) from exc
        except BotoCoreError as exc:
            raise self._fail("delete", target, exc) from exc

    def delete(self, path: str) -> None:
        """Meta first (the checkpoint is gone from then on), then both data objects in one request."""
        self.delete_part(path, "meta")
        bucket, _ = split_s3(path)
        keys: list[ObjectIdentifierTypeDef] = [{"Key": split_s3(part_path(path, p))[1]} for p in ("pkl", "state")]
        try:
            self.client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
        except (BotoCoreError, ClientError) as exc:
            raise self._fail("delete", path, exc) from exc

    def list(self, location: str) -> list[str]:
        bucket, prefix = split_s3(location)
        prefix = prefix.rstrip("/") + "/" if prefix else ""
        suffix = SUFFIXES["meta"]
        found: list[str] = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/")
            for page in pages:
                for item in page.get("Contents", []):
                    key = item.get("Key", "")
                    if key.endswith(suffix):
                        found.append(f"s3://{bucket}/{key[: -len(suffix)]}.pkl")
        except (BotoCoreError, ClientError) as exc:  # a missing bucket too: a typo must not list nothing
            raise self._fail("list", location, exc) from exc
        return sorted(found)

    def close(self) -> None:
        self.client.close()
