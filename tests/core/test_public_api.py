"""The public names of issue #3 import from the package root and from the spec's module paths."""

from __future__ import annotations

import inspect

import graflow
import graflow.exceptions
from graflow import (
    CoordinationBackend,
    ErrorHandlingPolicy,
    ExecutionContext,
    ParallelGroup,
    ParallelGroupError,
    TaskExecutionContext,
    TaskHandler,
    TaskWrapper,
    TypedChannel,
    WorkflowEngine,
    task,
    workflow,
)
from graflow.core.context import ExecutionContext as SpecExecutionContext
from graflow.core.context import TaskExecutionContext as SpecTaskExecutionContext
from graflow.core.decorators import task as spec_task
from graflow.core.engine import WorkflowEngine as SpecWorkflowEngine
from graflow.core.handler import TaskHandler as SpecTaskHandler
from graflow.core.task import TaskWrapper as SpecTaskWrapper
from graflow.core.workflow import workflow as spec_workflow
from graflow.exceptions import GraflowError


def test_root_names_are_the_spec_module_objects() -> None:
    assert task is spec_task
    assert workflow is spec_workflow
    assert ExecutionContext is SpecExecutionContext
    assert TaskExecutionContext is SpecTaskExecutionContext
    assert WorkflowEngine is SpecWorkflowEngine
    assert TaskWrapper is SpecTaskWrapper
    assert TaskHandler is SpecTaskHandler


def test_issue_names_are_listed_in_dunder_all() -> None:
    wanted = {
        "task",
        "workflow",
        "TaskWrapper",
        "ParallelGroup",
        "ExecutionContext",
        "TaskExecutionContext",
        "WorkflowEngine",
        "TaskHandler",
        "ErrorHandlingPolicy",
        "ParallelGroupError",
        "CoordinationBackend",
        "TypedChannel",
    }
    assert wanted <= set(graflow.__all__)
    for name in graflow.__all__:
        assert getattr(graflow, name) is not None


def test_every_error_class_derives_from_graflow_error() -> None:
    classes = [
        obj
        for _, obj in inspect.getmembers(graflow.exceptions, inspect.isclass)
        if issubclass(obj, Exception)
        and not issubclass(obj, Warning)  # PluginVersionWarning is a warning, not an error
        and obj.__module__ == "graflow.exceptions"
    ]
    assert len(classes) > 10
    for cls in classes:
        assert issubclass(cls, GraflowError), cls
    assert issubclass(ParallelGroupError, GraflowError)


def test_public_classes_have_the_expected_kinds() -> None:
    assert inspect.isabstract(TaskHandler)
    assert issubclass(ParallelGroup, graflow.core.task.Executable)
    assert isinstance(ErrorHandlingPolicy.BEST_EFFORT, ErrorHandlingPolicy)
    assert {b.name for b in CoordinationBackend} >= {"DIRECT", "THREADING", "MULTIPROCESSING", "REDIS"}
    assert TypedChannel.__module__ == "graflow.channels.typed"
