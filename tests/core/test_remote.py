"""Payloads for other processes: functions shared by a submission's members, task parameters kept
in the pickle, and signing between a run and its process pool."""

from __future__ import annotations

import pickle
import threading
from typing import Any

import cloudpickle
import pytest

from graflow import CoordinationBackend, TaskWrapper, workflow
from graflow.core import remote
from graflow.exceptions import SerializationError


def request(task: TaskWrapper, **kwargs: Any) -> remote.RemoteRequest:
    return remote.RemoteRequest("session", task, 1, kwargs, channel_data={})


def make_scaler(factor: int) -> Any:
    def scale(x: int) -> int:
        return x * factor

    return scale


def test_an_encoder_pickles_a_shared_function_once(monkeypatch: pytest.MonkeyPatch) -> None:
    scale = make_scaler(3)
    calls: list[object] = []
    real_dumps = cloudpickle.dumps
    monkeypatch.setattr(cloudpickle, "dumps", lambda obj, *a, **k: calls.append(obj) or real_dumps(obj, *a, **k))
    encoder = remote.RequestEncoder()
    payloads = [encoder.dumps(request(TaskWrapper(f"m{i}", scale), x=i)) for i in range(5)]
    assert calls == [scale]  # once, for five members
    loaded = [remote.loads_request(p) for p in payloads]
    assert [r.task.task_id for r in loaded] == [f"m{i}" for i in range(5)]
    assert [r.task.func(**r.kwargs) for r in loaded] == [0, 3, 6, 9, 12]


def test_functions_loaded_from_payloads_are_kept_per_process() -> None:
    encoder = remote.RequestEncoder()
    scale = make_scaler(2)
    first = remote.loads_request(encoder.dumps(request(TaskWrapper("a", scale))))
    second = remote.loads_request(encoder.dumps(request(TaskWrapper("b", scale))))
    assert first.task.func is second.task.func  # rebuilt once, not per delivery
    assert first.task.func is first.task.__wrapped__


def test_different_functions_stay_different() -> None:
    encoder = remote.RequestEncoder()
    doubled = remote.loads_request(encoder.dumps(request(TaskWrapper("a", make_scaler(2)), x=5)))
    tripled = remote.loads_request(encoder.dumps(request(TaskWrapper("b", make_scaler(3)), x=5)))
    assert doubled.task.func(5) == 10 and tripled.task.func(5) == 15


def test_a_new_encoder_captures_a_function_as_it_is_now() -> None:
    settings = {"factor": 2}

    def scale(x: int) -> int:
        return x * settings["factor"]

    before = remote.loads_request(remote.RequestEncoder().dumps(request(TaskWrapper("a", scale))))
    settings["factor"] = 10
    after = remote.loads_request(remote.RequestEncoder().dumps(request(TaskWrapper("a", scale))))
    assert (before.task.func(1), after.task.func(1)) == (2, 10)


def test_an_unpicklable_function_is_named_in_the_error() -> None:
    lock = threading.Lock()

    def locked() -> None:
        with lock:
            pass

    with pytest.raises(SerializationError, match=r"task 'needs_lock'.*cannot pickle"):
        remote.RequestEncoder().dumps(request(TaskWrapper("needs_lock", locked)))


def test_task_parameters_travel_with_the_task(monkeypatch: pytest.MonkeyPatch) -> None:
    def add(a: int, b: int = 2) -> int:
        return a + b

    shipped = cloudpickle.loads(cloudpickle.dumps(TaskWrapper("add", add)))
    monkeypatch.setattr(TaskWrapper, "_inspect", lambda *a: pytest.fail("signature inspected again"))
    assert [(p.name, p.has_default, p.default) for p in shipped._params] == [("a", False, None), ("b", True, 2)]
    assert shipped(1) == 3


def test_a_task_pickled_without_its_parameters_is_inspected_on_load() -> None:
    def add(a: int, b: int = 2) -> int:
        return a + b

    old = TaskWrapper("add", add)
    state = {k: v for k, v in old.__dict__.items() if k not in ("_params", "_var_kwargs")}  # an older pickle
    restored = TaskWrapper.__new__(TaskWrapper)
    restored.__setstate__(state)
    assert [p.name for p in restored._params] == ["a", "b"] and restored._var_kwargs is False
    assert pickle.loads(cloudpickle.dumps(restored))(a=1) == 3


def test_process_pool_members_run_when_a_signing_key_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    # The pool's processes inherit GRAFLOW_SECRET_KEY and refuse unsigned payloads: the run signs.
    monkeypatch.setenv(remote.SECRET_KEY_ENV, "pool-key")
    with workflow("signed_pool") as wf:
        group = TaskWrapper("a", make_scaler(2), kwargs={"x": 1}) | TaskWrapper("b", make_scaler(3), kwargs={"x": 1})
        group.with_execution(backend=CoordinationBackend.MULTIPROCESSING, max_workers=2)
    assert wf.execute() == {"a": 2, "b": 3}
