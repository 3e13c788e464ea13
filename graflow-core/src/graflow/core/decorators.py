"""``@task``: turn a function into a TaskWrapper."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, overload

from graflow.core.retry import RetryPolicy
from graflow.core.task import TaskWrapper


@overload
def task(func: Callable[..., Any], /) -> TaskWrapper: ...


@overload
def task(
    id: str | None = None,
    /,
    *,
    inject_context: bool = False,
    handler: str | None = None,
    max_cycles: int | None = None,
    retries: int | None = None,
    retry_delay: float | None = None,
    backoff: float | None = None,
    max_delay: float | None = None,
    jitter: bool | None = None,
    retry_on: type[BaseException] | tuple[type[BaseException], ...] | None = None,
    timeout: float | None = None,
    max_retries: int | None = None,
    retry_policy: RetryPolicy | None = None,
    cache: bool | None = None,
    cache_key: Callable[[Mapping[str, Any]], str | bytes] | None = None,
    cache_ttl: float | None = None,
    cache_store: str | None = None,
) -> Callable[[Callable[..., Any]], TaskWrapper]: ...


@overload
def task(
    *,
    id: str | None = None,
    inject_context: bool = False,
    handler: str | None = None,
    max_cycles: int | None = None,
    retries: int | None = None,
    retry_delay: float | None = None,
    backoff: float | None = None,
    max_delay: float | None = None,
    jitter: bool | None = None,
    retry_on: type[BaseException] | tuple[type[BaseException], ...] | None = None,
    timeout: float | None = None,
    max_retries: int | None = None,
    retry_policy: RetryPolicy | None = None,
    cache: bool | None = None,
    cache_key: Callable[[Mapping[str, Any]], str | bytes] | None = None,
    cache_ttl: float | None = None,
    cache_store: str | None = None,
) -> Callable[[Callable[..., Any]], TaskWrapper]: ...


def task(
    func_or_id: Callable[..., Any] | str | None = None,
    /,
    *,
    id: str | None = None,
    inject_context: bool = False,
    handler: str | None = None,
    max_cycles: int | None = None,
    retries: int | None = None,
    retry_delay: float | None = None,
    backoff: float | None = None,
    max_delay: float | None = None,
    jitter: bool | None = None,
    retry_on: type[BaseException] | tuple[type[BaseException], ...] | None = None,
    timeout: float | None = None,
    max_retries: int | None = None,
    retry_policy: RetryPolicy | None = None,
    cache: bool | None = None,
    cache_key: Callable[[Mapping[str, Any]], str | bytes] | None = None,
    cache_ttl: float | None = None,
    cache_store: str | None = None,
) -> TaskWrapper | Callable[[Callable[..., Any]], TaskWrapper]:
    """Make a task: ``@task``, ``@task("id")`` or ``@task(id=..., inject_context=True, handler="name",
    max_cycles=N)``. The task id defaults to the function's name.

    Retries and timeouts: ``@task(retries=3, retry_delay=1.0, backoff=2.0, max_delay=60, jitter=True,
    retry_on=(IOError,), timeout=30)``; see :class:`graflow.core.attempt_options.AttemptOptions`.
    Unset, they mean: no retries, 1 s doubling with jitter. Upstream Graflow 0.2's ``max_retries=N``
    (retried at once) and ``retry_policy=RetryPolicy(...)`` are accepted (:mod:`graflow.core.retry`).

    ``cache=True`` / ``cache_key=fn`` / ``cache_ttl=s`` / ``cache_store="name"``: result caching
    (README, "Result caching")."""
    if callable(func_or_id):
        return TaskWrapper(func_or_id.__name__, func_or_id)
    task_id = func_or_id if isinstance(func_or_id, str) else id

    def decorate(func: Callable[..., Any]) -> TaskWrapper:
        return TaskWrapper(
            task_id or func.__name__,
            func,
            inject_context=inject_context,
            handler=handler,
            max_cycles=max_cycles,
            retries=retries,
            retry_delay=retry_delay,
            backoff=backoff,
            max_delay=max_delay,
            jitter=jitter,
            retry_on=retry_on,
            timeout=timeout,
            max_retries=max_retries,
            retry_policy=retry_policy,
            cache=cache,
            cache_key=cache_key,
            cache_ttl=cache_ttl,
            cache_store=cache_store,
        )

    return decorate
