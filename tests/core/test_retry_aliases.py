"""Bad input to upstream Graflow 0.2's retry spellings (``max_retries=``, ``retry_policy=``,
``RetryPolicy``, ``default_max_retries=`` / ``config={"max_retries": N}``): refused early, naming
the task or the policy, the option and the fix."""

from __future__ import annotations

from typing import Any

import pytest

from graflow.core.context import ExecutionContext
from graflow.core.decorators import task
from graflow.core.engine import WorkflowEngine
from graflow.core.graph import TaskGraph
from graflow.core.retry import RetryPolicy
from graflow.core.task import TaskWrapper


def _noop() -> None:
    return None


@pytest.mark.parametrize(
    ("options", "error", "fragments"),
    [
        ({"retries": 2, "max_retries": 3}, TypeError, ("'t'", "retries=2", "max_retries=3", "only one")),
        ({"max_retries": "3"}, TypeError, ("'t'", "max_retries must be an int", "'3'")),
        (
            {"max_retries": True},
            TypeError,
            (
                "'t'",
                "max_retries must be an int",
            ),
        ),
        ({"max_retries": -1}, ValueError, ("'t'", "max_retries must be >= 0")),
        ({"retry_policy": {"max_retries": 3}}, TypeError, ("'t'", "retry_policy must be a graflow.core.retry")),
        ({"retry_policy": RetryPolicy(max_retries=2), "retries": 1}, TypeError, ("'t'", "already sets retries")),
        ({"retry_policy": RetryPolicy(max_retries=2), "max_retries": 1}, TypeError, ("already sets max_retries",)),
        (
            {"retry_policy": RetryPolicy(max_retries=2), "retry_delay": 1, "jitter": True},
            TypeError,
            ("already sets retry_delay, jitter", "not both"),
        ),
        ({"max_retries": 2, "retry_delay": -1}, ValueError, ("'t'", "retry_delay must be >= 0")),
    ],
)
def test_bad_alias_options_fail_at_declaration(
    options: dict[str, Any], error: type[Exception], fragments: tuple[str, ...]
) -> None:
    with pytest.raises(error) as caught:
        TaskWrapper("t", _noop, **options)
    for fragment in fragments:
        assert fragment in str(caught.value)
    with pytest.raises(error):  # the decorator passes them through unchanged
        task("t", **options)(_noop)


@pytest.mark.parametrize(
    ("fields", "error", "fragment"),
    [
        ({"max_retries": -1}, ValueError, "RetryPolicy: max_retries must be >= 0"),
        ({"max_retries": 1.5}, TypeError, "RetryPolicy: max_retries must be an int"),
        ({"initial_interval": "1"}, TypeError, "RetryPolicy: initial_interval must be a number of seconds"),
        ({"initial_interval": -0.1}, ValueError, "RetryPolicy: initial_interval must be >= 0"),
        ({"backoff_factor": 0.5}, ValueError, "RetryPolicy: backoff_factor must be >= 1"),
        ({"backoff_factor": None}, TypeError, "RetryPolicy: backoff_factor must be a number"),
        ({"max_interval": 0.5, "initial_interval": 1.0}, ValueError, "max_interval (0.5) is shorter than"),
        ({"jitter": "yes"}, TypeError, "RetryPolicy: jitter must be True or False"),
    ],
)
def test_bad_retry_policy_fields_fail_when_the_policy_is_made(
    fields: dict[str, Any], error: type[Exception], fragment: str
) -> None:
    with pytest.raises(error) as caught:
        RetryPolicy(**fields)
    assert fragment in str(caught.value)


def _graph() -> TaskGraph:
    graph = TaskGraph()
    graph.add_node(TaskWrapper("t", _noop))
    return graph


@pytest.mark.parametrize(("value", "error"), [(-1, ValueError), ("2", TypeError), (2.0, TypeError), (True, TypeError)])
def test_a_bad_run_default_fails_when_the_context_is_created(value: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match=r"ExecutionContext\.create: max_retries must"):
        ExecutionContext.create(_graph(), "t", default_max_retries=value)
    with pytest.raises(error, match=r"ExecutionContext\.create: max_retries must"):
        ExecutionContext.create(_graph(), "t", config={"max_retries": value})


def test_a_bad_engine_default_fails_when_the_run_starts() -> None:
    context = ExecutionContext.create(_graph(), "t")
    with pytest.raises(ValueError, match="the run's max_retries setting: max_retries must be >= 0"):
        WorkflowEngine(config={"max_retries": -2}).execute(context)


def test_a_zero_default_is_no_default() -> None:
    calls = 0

    def fails() -> None:
        nonlocal calls
        calls += 1
        raise OSError("down")

    graph = TaskGraph()
    graph.add_node(TaskWrapper("t", fails))
    with pytest.raises(Exception, match="down"):
        WorkflowEngine().execute(ExecutionContext.create(graph, "t", default_max_retries=0))
    assert calls == 1
