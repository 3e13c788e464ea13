"""One task execution through its handler: shared by the engine, group members and remote workers."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from graflow.cache.runtime import run_cached
from graflow.core.context import _CURRENT_TASK, TaskExecutionContext
from graflow.core.handler import DirectTaskHandler, TaskHandler
from graflow.core.retry import with_default

if TYPE_CHECKING:
    from graflow.core.attempt_options import AttemptOptions
    from graflow.core.task import TaskWrapper

Execute = Callable[[TaskHandler, "TaskWrapper", TaskExecutionContext], Any]

_UNSET: Any = object()


def execute(handler: TaskHandler, task: TaskWrapper, tctx: TaskExecutionContext) -> Any:
    """Run ``task`` with ``handler`` and return its result.

    The direct handler is inlined (no context variable, no result bookkeeping): it is the hot path.
    Other handlers see the execution through ``task.run()``; their result is what they returned,
    else what they recorded with ``context.set_result``, else ``None`` (spec section 4 shows both).
    A task with ``cache`` on goes through :func:`graflow.cache.runtime.run_cached`, which calls
    :func:`execute_uncached` on a miss (so a hit makes no attempt and a miss stores the final
    result); a task with retries or a timeout goes through :func:`graflow.core.attempts.run_attempts`,
    which calls :func:`execute_once` per attempt. A plain task pays one attribute check
    (``task._wrapped``, set when the task is built).
    """
    if task._wrapped:
        if task._cache is not None:
            return run_cached(handler, task, tctx, execute_uncached)
        return attempts.run_attempts(handler, task, tctx)
    if type(handler) is DirectTaskHandler:
        return task.invoke(tctx)
    return _through_handler(handler, task, tctx)


def execute_with_default(default: AttemptOptions | None) -> Execute:
    """:func:`execute` for a run whose tasks get ``default`` retries unless they declare their own
    (``default_max_retries``). Chosen once per run: without a default it is :func:`execute` itself,
    so a plain task pays nothing for the feature."""
    if default is None:
        return execute

    def execute_defaulted(handler: TaskHandler, task: TaskWrapper, tctx: TaskExecutionContext) -> Any:
        found = with_default(task, default)
        if found is None or found is task.attempts:  # the task's own options (or none) decide
            return execute(handler, task, tctx)
        options: AttemptOptions = found

        def attempt_all(h: TaskHandler, t: TaskWrapper, c: TaskExecutionContext) -> Any:
            return attempts.run_attempts(h, t, c, options)

        if task._cache is not None:
            return run_cached(handler, task, tctx, attempt_all)
        return attempt_all(handler, task, tctx)

    return execute_defaulted


def execute_uncached(handler: TaskHandler, task: TaskWrapper, tctx: TaskExecutionContext) -> Any:
    """:func:`execute` without the cache: every attempt the task's retries allow."""
    if task.attempts is not None:
        return attempts.run_attempts(handler, task, tctx)
    return execute_once(handler, task, tctx)


def execute_once(handler: TaskHandler, task: TaskWrapper, tctx: TaskExecutionContext) -> Any:
    """One attempt: :func:`execute` without retries and timeout."""
    if type(handler) is DirectTaskHandler:
        return task.invoke(tctx)
    return _through_handler(handler, task, tctx)


def _through_handler(handler: TaskHandler, task: TaskWrapper, tctx: TaskExecutionContext) -> Any:
    ectx = tctx.execution_context
    results = ectx.results
    previous = results.pop(task.task_id, _UNSET)
    token = _CURRENT_TASK.set(tctx)
    try:
        returned = handler.execute_task(task, ectx)
    except BaseException:
        if previous is not _UNSET:
            results[task.task_id] = previous
        raise
    finally:
        _CURRENT_TASK.reset(token)
    if returned is not None:
        return returned
    return results.get(task.task_id)


# Last, as a module: attempts imports execute_once from here, and either module may be imported first.
from graflow.core import attempts  # noqa: E402
