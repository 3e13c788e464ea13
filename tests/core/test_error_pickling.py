"""Graflow errors survive pickling with their attributes and notes: they come back from workers."""

from __future__ import annotations

import pickle
from collections.abc import Callable

import cloudpickle
import pytest

from graflow.exceptions import (
    GraflowError,
    MissingParameterError,
    ParallelGroupError,
    TaskExecutionError,
    UnknownNameError,
)

ERRORS: list[Callable[[], GraflowError]] = [
    lambda: UnknownNameError("handler", "gpu", ["direct"], "Install graflow-gpu."),
    lambda: TaskExecutionError("t", ValueError("inner")),
    lambda: MissingParameterError("t", "x"),
    lambda: ParallelGroupError("failed", "g", [("a", "ValueError: v")], ["b"], {"a": ValueError("v")}),
]


@pytest.mark.parametrize("make", ERRORS, ids=lambda make: type(make()).__name__)
@pytest.mark.parametrize("dumps", [pickle.dumps, cloudpickle.dumps], ids=["pickle", "cloudpickle"])
def test_error_round_trips_with_message_attributes_and_notes(
    make: Callable[[], GraflowError], dumps: Callable[[object], bytes]
) -> None:
    error = make()
    error.add_note("raised on worker w1")
    copy = pickle.loads(dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert {k: repr(v) for k, v in vars(copy).items()} == {k: repr(v) for k, v in vars(error).items()}
    assert copy.__notes__ == ["raised on worker w1"]
