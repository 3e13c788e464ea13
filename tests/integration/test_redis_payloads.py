"""A worker process refuses payloads it must not load: tampered, unsigned under a key, other versions."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import cloudpickle
import pytest
import redis

from graflow import CoordinationBackend, TaskWrapper, workflow
from graflow.core import remote
from graflow.core.task import ParallelGroup
from graflow.exceptions import ParallelGroupError, PayloadRejectedError
from graflow_redis import RedisTaskQueue

cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def leave_trace(url: str) -> Callable[[], str]:
    def run() -> str:
        redis.Redis.from_url(url).set("ran", 1)
        return "ran"

    return run


def run_one(url: str, config: dict[str, Any]) -> BaseException:
    with workflow("payload") as wf:
        ParallelGroup([TaskWrapper("job", leave_trace(url))]).with_execution(backend=CoordinationBackend.REDIS)
    with pytest.raises(ParallelGroupError) as info:
        wf.execute(config={"redis_url": url, **config})
    assert not redis.Redis.from_url(url).exists("ran"), "the refused payload was executed"
    return info.value.errors["job"]


def test_version_mismatch_names_both_sides(
    redis_url: str, start_worker: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = start_worker("w1")
    theirs = {**remote.runtime_versions(), "graflow-core": "9.9.9", "cloudpickle": "0.0.1"}
    monkeypatch.setattr(remote, "runtime_versions", lambda: theirs)  # this side now claims other versions
    error = run_one(redis_url, {})
    assert isinstance(error, PayloadRejectedError)
    message = str(error)
    assert "version mismatch for task 'job'" in message
    assert "graflow-core: sender 9.9.9 vs here" in message
    assert "cloudpickle: sender 0.0.1 vs here" in message
    assert "payload_rejected" in worker.log()


def test_tampered_payload_fails_the_task_and_is_never_loaded(
    redis_url: str, start_worker: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = start_worker("w1", env={"GRAFLOW_SECRET_KEY": "fleet-key"})
    original = RedisTaskQueue.publish

    def tamper(self: RedisTaskQueue, entries: Any) -> list[str]:
        forged = []
        for fields in entries:
            body = bytearray(fields["p"])
            body[-3] ^= 0x01  # one flipped bit in the pickle, signature left as it was
            forged.append({**fields, "p": bytes(body)})
        return original(self, forged)

    monkeypatch.setattr(RedisTaskQueue, "publish", tamper)
    error = run_one(redis_url, {"secret_key": "fleet-key"})
    assert isinstance(error, PayloadRejectedError)
    assert "signature does not match" in str(error)
    assert "payload_rejected" in worker.log()


def test_unsigned_payload_is_refused_by_a_worker_with_a_key(redis_url: str, start_worker: Callable[..., Any]) -> None:
    worker = start_worker("w1", env={"GRAFLOW_SECRET_KEY": "fleet-key"})
    error = run_one(redis_url, {})
    assert isinstance(error, PayloadRejectedError)
    assert "unsigned but a secret key is set here" in worker.log()


def test_signed_payloads_run_with_the_same_key(redis_url: str, start_worker: Callable[..., Any]) -> None:
    start_worker("w1", env={"GRAFLOW_SECRET_KEY": "fleet-key"})
    with workflow("signed") as wf:
        group = ParallelGroup([TaskWrapper("job", leave_trace(redis_url))])
        group.with_execution(backend=CoordinationBackend.REDIS)
    _, ctx = wf.execute(ret_context=True, config={"redis_url": redis_url, "secret_key": "fleet-key"})
    assert ctx.results[group.task_id] == {"job": "ran"}
