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


class ValidationFailed(Exception):
    """Pickles, but cannot be rebuilt: its __init__ needs two arguments, Exception.args holds one."""

    def __init__(self, column: str, rows: int) -> None:
        super().__init__(f"column {column!r} has {rows} bad rows")


def test_an_error_that_cannot_be_rebuilt_travels_as_a_description() -> None:
    from graflow.coordination.base import MemberOutcome
    from graflow.core import remote
    from graflow.exceptions import RemoteTaskError

    error = ValidationFailed("price", 17)
    error.add_note("Traceback in the process that ran the task (pid 1): ...")
    with pytest.raises(TypeError):  # what the far side used to get instead of the task's error
        pickle.loads(cloudpickle.dumps(error))
    outcome = remote.loads_outcome(remote.dumps_outcome(MemberOutcome("t", 1, error=error)))
    assert isinstance(outcome.error, RemoteTaskError)
    assert outcome.error.remote_type == "ValidationFailed"
    assert str(outcome.error) == "ValidationFailed: column 'price' has 17 bad rows"
    assert outcome.error.__notes__ == ["Traceback in the process that ran the task (pid 1): ..."]


def test_a_multiprocessing_member_error_that_cannot_be_rebuilt_keeps_its_type_and_message() -> None:
    from graflow import CoordinationBackend, ParallelGroupError, TaskWrapper, workflow

    def validate() -> None:
        class RowsRejected(Exception):  # local: travels by value, as user code in a script would
            def __init__(self, column: str, rows: int) -> None:
                super().__init__(f"column {column!r} has {rows} bad rows")

        raise RowsRejected("price", 17)

    with workflow("mp_error") as wf:
        (TaskWrapper("validate", validate) | TaskWrapper("ok", lambda: 1)).with_execution(
            backend=CoordinationBackend.MULTIPROCESSING, max_workers=2
        )
    with pytest.raises(ParallelGroupError, match=r"validate \(RemoteTaskError: RowsRejected: column 'price' has 17"):
        wf.execute()
