"""Tasks and parallel groups, and the ``>>`` / ``|`` operators that wire them.

Every argument-resolution decision that can be made once is made when the task is built
(``inspect.signature`` runs once per task, never per execution): the hot path only walks a tuple.
"""

from __future__ import annotations

import importlib
import inspect
import itertools
import sys
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from graflow.core.attempt_options import AttemptOptions, register_timed
from graflow.core.graph import ACTIVE_GRAPH, TaskGraph
from graflow.core.retry import RetryPolicy, resolve_retry_options
from graflow.exceptions import GraflowError, MissingParameterError
from graflow.queue.base import NO_DATA

if TYPE_CHECKING:
    from graflow.cache.options import CacheSpec
    from graflow.core.context import TaskExecutionContext
    from graflow.policies import ErrorHandlingPolicy

DEFAULT_HANDLER = "direct"


def _active_graph_for(*items: Executable) -> TaskGraph:
    graph = ACTIVE_GRAPH.get()
    if graph is None:
        names = ", ".join(repr(i.task_id) for i in items)
        raise GraflowError(
            f"operators on {names} need an active workflow: wire tasks inside `with workflow('name') as wf:`"
        )
    for item in items:
        item._attach(graph)
    return graph


class Executable:
    """A node of the graph: a task or a parallel group."""

    task_id: str

    def _attach(self, graph: TaskGraph) -> None:
        graph.add_node(self)

    def __rshift__(self, other: Executable) -> Executable:
        if not isinstance(other, Executable):
            return NotImplemented
        graph = _active_graph_for(self, other)
        graph.add_edge(self.task_id, other.task_id)
        return other

    def __lshift__(self, other: Executable) -> Executable:
        if not isinstance(other, Executable):
            return NotImplemented
        return other >> self

    def __or__(self, other: Executable) -> ParallelGroup:
        if not isinstance(other, Executable):
            return NotImplemented
        return ParallelGroup._combine(self, other)


class _Param:
    __slots__ = ("default", "has_default", "name")

    def __init__(self, name: str, has_default: bool, default: Any) -> None:
        self.name = name
        self.has_default = has_default
        self.default = default

    def __reduce__(self) -> tuple[Any, ...]:
        return (_Param, (self.name, self.has_default, self.default))


class TaskWrapper(Executable):
    """A function as a workflow task.

    ``TaskWrapper("id", fn)`` builds one at run time (lambdas and closures included); ``@task`` builds
    one at import time. Calling the wrapper calls the function directly (debugging without a run);
    ``task(task_id="x", **bound)`` instead makes a new task (:meth:`bind`, upstream's spelling).

    Argument resolution, for each parameter other than the injected context, first match wins:
    explicit ``kwargs`` given here; the data of ``next_iteration(data)`` (first parameter only); the
    result of a task whose id equals the parameter name; the channel key of that name; the
    parameter's default. Otherwise the task fails with ``MissingParameterError`` naming it.

    ``cache=True`` (or ``cache_key=fn``, with ``cache_ttl`` seconds and ``cache_store`` by name)
    returns a stored result instead of running when the function's code and the resolved arguments
    match an earlier execution (graflow-core README, "Result caching").

    ``retries``, ``retry_delay``, ``backoff``, ``max_delay``, ``jitter``, ``retry_on`` and ``timeout``
    make :attr:`attempts` (see :class:`graflow.core.attempt_options.AttemptOptions`); it stays
    ``None`` when there is nothing to do (no retries, no timeout), which keeps the plain task's path free.
    ``max_retries`` (retried at once unless ``retry_delay`` is given) and ``retry_policy`` are
    upstream Graflow 0.2's spellings (:mod:`graflow.core.retry`).
    """

    _cache: CacheSpec | None = None  # tasks unpickled from before caching existed have none
    attempts: AttemptOptions | None = None  # class default: pickles written before the option existed
    _retries_declared = False  # set when the task gave retries itself (see graflow.core.retry.with_default)
    _wrapped = False
    """True when an execution is more than one call (``_cache`` or ``attempts`` set): set once when
    the task is built (or unpickled), so :func:`graflow.core.execution.execute` checks one attribute
    for a plain task. Nothing changes ``_cache`` or ``attempts`` after that."""

    def __init__(
        self,
        task_id: str,
        func: Callable[..., Any],
        *,
        inject_context: bool = False,
        handler: str | None = None,
        max_cycles: int | None = None,
        kwargs: Mapping[str, Any] | None = None,
        register: bool = True,
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
        register_to_context: bool | None = None,
        handler_type: str | None = None,
    ) -> None:
        # ``register_to_context`` and ``handler_type``: upstream Graflow 0.2's names for ``register``
        # and ``handler``.
        if register_to_context is not None:
            register = register_to_context
        handler = handler or handler_type
        if not isinstance(task_id, str) or not task_id:
            raise ValueError(f"task id must be a non-empty string, got {task_id!r}")
        if not callable(func):
            raise TypeError(f"task {task_id!r}: {func!r} is not callable")
        if max_cycles is not None and max_cycles < 1:
            raise ValueError(f"task {task_id!r}: max_cycles must be >= 1, got {max_cycles}")
        self.task_id = task_id
        self.func = func
        self.inject_context = inject_context
        self.handler = handler or DEFAULT_HANDLER
        self.max_cycles = max_cycles
        self.kwargs: dict[str, Any] = dict(kwargs or {})
        self.attempts = None
        retry_given = (retries, max_retries, retry_policy, retry_delay, backoff, max_delay, jitter, retry_on, timeout)
        if any(option is not None for option in retry_given):  # a task without any pays nothing more
            retry, declared = resolve_retry_options(
                task_id,
                retries=retries,
                max_retries=max_retries,
                retry_policy=retry_policy,
                retry_delay=retry_delay,
                backoff=backoff,
                max_delay=max_delay,
                jitter=jitter,
            )
            options = AttemptOptions.build(
                task_id, **retry, retry_on=retry_on, timeout=timeout
            )  # validated even when unused: a typo fails at declaration
            self.attempts = options if options.retries or options.timeout is not None else None
            if declared:  # a run's default retries (default_max_retries) leave this task alone
                self._retries_declared = True
        if timeout is not None:
            register_timed(self)
        self._params, self._var_kwargs = self._inspect(func, inject_context)
        self._cache: CacheSpec | None = None
        if cache or cache_key is not None or cache_ttl is not None or cache_store is not None:
            from graflow.cache.options import build_cache_spec

            self._cache = build_cache_spec(
                task_id,
                func,
                cache=cache,
                cache_key=cache_key,
                cache_ttl=cache_ttl,
                cache_store=cache_store,
                kwargs=self.kwargs,
                defaults=[(p.name, p.default) for p in self._params if p.has_default and p.name not in self.kwargs],
            )
        self._wrapped = self._cache is not None or self.attempts is not None
        self.__doc__ = getattr(func, "__doc__", None)
        self.__wrapped__ = func
        graph = ACTIVE_GRAPH.get()
        if register and graph is not None:
            graph.add_node(self)

    @staticmethod
    def _inspect(func: Callable[..., Any], inject_context: bool) -> tuple[tuple[_Param, ...], bool]:
        try:
            signature = inspect.signature(func)
        except (TypeError, ValueError):  # builtins without signatures: pass nothing
            return (), False
        params = []
        var_kwargs = False
        positional = list(signature.parameters.values())
        if inject_context:
            if not positional or positional[0].kind not in (
                inspect.Parameter.POSITIONAL_ONLY,
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
            ):
                raise TypeError(
                    f"{getattr(func, '__qualname__', func)!r} has inject_context=True, so its first "
                    "parameter must accept the TaskExecutionContext"
                )
            positional = positional[1:]
        for p in positional:
            if p.kind is inspect.Parameter.VAR_KEYWORD:
                var_kwargs = True
                continue
            if p.kind is inspect.Parameter.VAR_POSITIONAL:
                continue
            has_default = p.default is not inspect.Parameter.empty
            params.append(_Param(p.name, has_default, p.default if has_default else None))
        return tuple(params), var_kwargs

    # --- execution ---------------------------------------------------------------------------------

    def resolve_kwargs(self, ctx: TaskExecutionContext, explicit: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The keyword arguments this execution receives (see the class docstring for the order).

        ``explicit`` adds explicit arguments for this execution only (``task.run(device=...)``).
        """
        if ctx._kwargs is not None:
            return ctx._kwargs
        kwargs = self.kwargs if not explicit else {**self.kwargs, **explicit}
        params = self._params
        if not params:
            return dict(kwargs) if kwargs else {}
        out: dict[str, Any] = {}
        data = ctx._data
        results = ctx.execution_context.results
        channel = None
        for index, p in enumerate(params):
            name = p.name
            if name in kwargs:
                out[name] = kwargs[name]
            elif index == 0 and data is not NO_DATA:
                out[name] = data
            elif name in results:
                out[name] = results[name]
            else:
                if channel is None:
                    channel = ctx.execution_context.channel
                if name in channel:
                    out[name] = channel.get(name)
                elif not p.has_default:
                    raise MissingParameterError(self.task_id, name)
        if self._var_kwargs:
            for name, value in kwargs.items():
                out.setdefault(name, value)
        return out

    def invoke(self, ctx: TaskExecutionContext) -> Any:
        """Run the function for one execution, resolving its arguments from ``ctx``."""
        if self.inject_context:
            return self.func(ctx, **self.resolve_kwargs(ctx))
        if not self._params and not self.kwargs:
            return self.func()
        return self.func(**self.resolve_kwargs(ctx))

    def run(self, *args: Any, **overrides: Any) -> Any:
        """Run the function for the execution in progress; handlers call this (spec section 4).

        ``overrides`` are keyword arguments that win over the resolved ones, e.g. a handler choosing
        the device: ``task.run(device=f"cuda:{gpu_id}")``. In the main thread outside any execution
        (a script, a test, a REPL) it runs the function once with ``args`` and ``overrides``, as
        upstream Graflow 0.2 does. Another thread without an execution is refused rather than
        guessed at: it is most likely a handler's pool thread, which must run ``task.run`` through
        ``contextvars.copy_context().run`` to see the execution (and its resolved arguments).
        """
        from graflow.core.context import _CURRENT_TASK, current_task_context

        ctx = _CURRENT_TASK.get()
        if ctx is None:
            if threading.current_thread() is not threading.main_thread():
                current_task_context(self.task_id)  # raises, saying how to call it
            return self._run_alone(overrides, args)
        if ctx.task_id != self.task_id:
            ctx = current_task_context(self.task_id)  # raises, naming the task
        if args:
            raise TypeError(f"task {self.task_id!r}: run() inside a handler takes keyword overrides only")
        if not overrides:
            return self.invoke(ctx)
        kwargs = {**self.resolve_kwargs(ctx, overrides), **overrides}
        return self.func(ctx, **kwargs) if self.inject_context else self.func(**kwargs)

    def _run_alone(self, kwargs: Mapping[str, Any], args: tuple[Any, ...] = ()) -> Any:
        """``run()`` with no run in progress: the function once, in a throwaway one-task run's
        context when it asks for one (not the hot path: handlers always run inside a run)."""
        if not self.inject_context:
            return self.func(*args, **kwargs)
        from graflow.core.context import ExecutionContext, TaskExecutionContext

        graph = TaskGraph()
        graph.add_node(self)
        tctx = TaskExecutionContext(ExecutionContext.create(graph, self.task_id), self.task_id, 1)
        return self.func(tctx, *args, **kwargs)

    def bind(self, task_id: str | None = None, **kwargs: Any) -> TaskWrapper:
        """A new task running the same function with ``kwargs`` bound (explicit arguments win over
        results and channel keys): ``fetch.bind("fetch_eu", region="eu")``. Without an id, one is
        made from the function's name. It joins the active workflow like any new task."""
        return TaskWrapper(
            task_id or f"{self.task_id}_{uuid.uuid4().hex[:8]}",
            self.func,
            inject_context=self.inject_context,
            handler=self.handler,
            max_cycles=self.max_cycles,
            kwargs={**self.kwargs, **kwargs},
            **self._option_kwargs(),
        )

    def _option_kwargs(self) -> dict[str, Any]:
        """This task's retry, timeout and cache options as constructor arguments (for :meth:`bind`)."""
        options: dict[str, Any] = {}
        a = self.attempts
        if a is not None:
            options.update(retry_on=a.retry_on, timeout=a.timeout)
            if self._retries_declared:
                options.update(
                    retries=a.retries,
                    retry_delay=a.retry_delay,
                    backoff=a.backoff,
                    max_delay=a.max_delay,
                    jitter=a.jitter,
                )
        elif self._retries_declared:
            options.update(retries=0)  # an explicit 0 keeps the run's default retries away from the copy too
        if self._cache is not None:
            c = self._cache
            options.update(cache=True, cache_key=c.key_fn, cache_ttl=c.ttl, cache_store=c.store)
        return options

    @property
    def max_retries(self) -> int | None:
        """Upstream Graflow 0.2's view of this task's own retries: None when it declared none (a
        run's ``default_max_retries`` then applies), else how many."""
        if not self._retries_declared:
            return None
        return self.attempts.retries if self.attempts is not None else 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # Upstream Graflow 0.2's task instances: ``fetch(task_id="fetch_eu", region="eu")``. Only a
        # ``task_id`` keyword the function itself does not take selects this; otherwise a call is a
        # plain call of the function (debugging without a run).
        if "task_id" in kwargs and not args and not self._takes("task_id"):
            return self.bind(kwargs.pop("task_id"), **kwargs)
        return self.func(*args, **kwargs)

    def _takes(self, name: str) -> bool:
        return self._var_kwargs or any(p.name == name for p in self._params)

    def __repr__(self) -> str:
        return f"TaskWrapper({self.task_id!r}, handler={self.handler!r})"

    # --- serialization: by reference when importable, by value otherwise ----------------------------

    def import_path(self) -> tuple[str, str] | None:
        """``(module, qualname)`` when this very object is importable from there (a module-level
        ``@task``), so pickles refer to the code instead of copying it: a process that loads the
        pickle later (a resumed run, a worker) runs the code as it is then."""
        module = getattr(self.func, "__module__", None)
        qualname = getattr(self.func, "__qualname__", "")
        return (module, qualname) if module and find_by_name(module, qualname) is self else None

    def __reduce__(self) -> Any:
        path = self.import_path()
        if path is not None:
            return (_import_task, path)
        return super().__reduce__()

    def __setstate__(self, state: dict[str, Any]) -> None:
        """The parameters travel with the function (inspecting a signature per delivery costs a worker
        ~12 µs a task); pickles written before they did are inspected here."""
        self.__dict__.update(state)
        self._wrapped = self._cache is not None or self.attempts is not None  # pickles from before it existed
        attempts = state.get("attempts")
        if attempts is not None and attempts.timeout is not None:
            register_timed(self)
        if "_params" not in state:
            self._params, self._var_kwargs = self._inspect(self.func, self.inject_context)


def find_by_name(module: str | None, qualname: str) -> Any:
    """What ``module.qualname`` names in this process now (None if nothing, or a script's
    ``__main__`` or a local name, which another process cannot find): how a pickle by reference
    finds an object again. None too for a module registered with
    ``cloudpickle.register_pickle_by_value`` (``graflow run my-flow.py``): its code travels by value."""
    if not module or module == "__main__" or "<" in qualname:
        return None
    if _by_value(module):
        return None
    target: Any = sys.modules.get(module)
    for part in qualname.split("."):
        target = getattr(target, part, None)
    return target


def _by_value(module: str) -> bool:
    import cloudpickle

    registered = cloudpickle.list_registry_pickle_by_value()
    return bool(registered) and any(module == name or module.startswith(name + ".") for name in registered)


def _import_task(module: str, qualname: str) -> TaskWrapper:
    target: Any = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    if not isinstance(target, TaskWrapper):
        raise TypeError(f"{module}.{qualname} is no longer a task (found {type(target).__name__})")
    return target


class ParallelGroup(Executable):
    """Members that run independently; the group finishes when all of them finished (a barrier).

    How members run is the group's coordination backend (``with_execution``); what a failure means
    is its error policy (``with_policy``, strict by default).
    """

    _counter = itertools.count(1)

    def __init__(self, members: Sequence[Executable], name: str | None = None) -> None:
        graph = ACTIVE_GRAPH.get()
        self.task_id = name or f"ParallelGroup_{next(ParallelGroup._counter)}"
        self.members: list[Executable] = []
        self.backend: str = "threading"
        self.execution_options: dict[str, Any] = {}
        self.policy: ErrorHandlingPolicy | None = None
        self._named = name is not None
        self._configured = False
        self._graph = graph
        if graph is not None:
            graph.add_node(self)
        for member in members:
            self._add_member(member)

    @property
    def member_ids(self) -> list[str]:
        return [m.task_id for m in self.members]

    def _add_member(self, member: Executable) -> None:
        if any(m is member for m in self.members):
            return
        graph = self._graph
        if graph is not None:
            graph.add_node(member)
            graph.add_member(self.task_id, member.task_id)
        self.members.append(member)

    def _attach(self, graph: TaskGraph) -> None:
        graph.add_node(self)
        self._graph = graph
        for member in self.members:
            graph.add_node(member)
            graph.add_member(self.task_id, member.task_id)

    def _mergeable(self) -> bool:
        """An unnamed, unconfigured group with no edges can absorb more members: ``a | b | c``."""
        graph = self._graph
        free = graph is None or not (graph.successors.get(self.task_id) or graph.predecessors.get(self.task_id))
        return not self._named and not self._configured and free

    @classmethod
    def _combine(cls, left: Executable, right: Executable) -> ParallelGroup:
        if isinstance(left, ParallelGroup) and left._mergeable():
            if isinstance(right, ParallelGroup) and right._mergeable():
                right._dissolve()
                for m in right.members:
                    left._add_member(m)
            else:
                left._add_member(right)
            return left
        if isinstance(right, ParallelGroup) and right._mergeable():
            right._dissolve()
            return cls([left, *right.members])
        return cls([left, right])

    def _dissolve(self) -> None:
        """Remove this group's node so its members can join another group."""
        graph = self._graph
        if graph is not None and self.task_id in graph:
            for member in self.members:
                graph.member_of.pop(member.task_id, None)
            graph.remove_node(self.task_id)

    # --- configuration -----------------------------------------------------------------------------

    def set_group_name(self, name: str) -> ParallelGroup:
        """Give the group a stable id (used in results, logs, errors and checkpoints)."""
        if self._graph is not None and self.task_id in self._graph:
            self._graph.rename_node(self.task_id, name)
        self.task_id = name
        self._named = True
        return self

    def with_execution(
        self,
        backend: Any = None,
        max_workers: int | None = None,
        *,
        policy: ErrorHandlingPolicy | str | None = None,
        backend_config: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> ParallelGroup:
        """Choose how members run: ``CoordinationBackend.DIRECT | THREADING | MULTIPROCESSING | REDIS``
        or any coordinator name a plugin registered. Extra ``options`` go to the coordinator.

        Upstream Graflow 0.2's spellings work too: ``policy=`` is :meth:`with_policy`, and
        ``backend_config={...}`` adds coordinator options (its ``thread_count`` is ``max_workers``).
        """
        if backend_config:
            config = dict(backend_config)
            if max_workers is None and "thread_count" in config:
                max_workers = int(config.pop("thread_count"))
            options = {**config, **options}
        if backend is not None:
            self.backend = str(getattr(backend, "value", backend))
        if max_workers is not None:
            if max_workers < 1:
                raise ValueError(f"max_workers must be >= 1, got {max_workers}")
            self.execution_options["max_workers"] = max_workers
        self.execution_options.update(options)
        if policy is not None:
            self.with_policy(policy)
        self._configured = True
        return self

    def with_policy(self, policy: ErrorHandlingPolicy | str, **options: Any) -> ParallelGroup:
        """Choose what a member failure means: an ``ErrorHandlingPolicy`` or a registered policy name."""
        from graflow.policies import ErrorHandlingPolicy, NamedPolicy

        if isinstance(policy, str):
            self.policy = NamedPolicy(policy, options)
        elif isinstance(policy, ErrorHandlingPolicy):
            self.policy = policy
        else:
            raise TypeError(f"with_policy expects an ErrorHandlingPolicy or a policy name, got {policy!r}")
        self._configured = True
        return self

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"parallel group {self.task_id!r} is not callable; run it in a workflow")

    def __repr__(self) -> str:
        return f"ParallelGroup({self.task_id!r}, members={self.member_ids}, backend={self.backend!r})"

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_graph"] = None  # the graph is pickled on its own; a group must not drag it along
        return state


def iter_tasks(items: Iterable[Executable]) -> Iterable[TaskWrapper]:
    """Every TaskWrapper in ``items``, descending into groups."""
    for item in items:
        if isinstance(item, ParallelGroup):
            yield from iter_tasks(item.members)
        elif isinstance(item, TaskWrapper):
            yield item


class TaskChain:
    """What ``chain(a, b, c)`` returns: ``a >> b >> c`` already wired. On the right of ``>>`` it
    attaches by its first task (``x >> chain(a, b, c)`` wires ``x >> a``), on the left by its last
    (``chain(a, b, c) >> y`` wires ``c >> y``). It is not a node of the graph itself."""

    def __init__(self, first: Executable, last: Executable) -> None:
        self.first = first
        self.last = last

    @property
    def task_id(self) -> str:
        return self.last.task_id

    def __rshift__(self, other: Executable | TaskChain) -> Executable | TaskChain:
        self.last >> (other.first if isinstance(other, TaskChain) else other)
        return other

    def __rrshift__(self, other: Executable) -> TaskChain:
        other >> self.first
        return self

    def __lshift__(self, other: Executable | TaskChain) -> Executable | TaskChain:
        (other.last if isinstance(other, TaskChain) else other) >> self.first
        return other

    def __rlshift__(self, other: Executable) -> TaskChain:
        self.last >> other
        return self

    def __repr__(self) -> str:
        return f"TaskChain({self.first.task_id!r} ... {self.last.task_id!r})"


def chain(*tasks: Executable) -> TaskChain:
    """``chain(a, b, c)`` wires ``a >> b >> c`` (upstream Graflow 0.2's helper); the result attaches
    by ``a`` on the right of ``>>`` and by ``c`` on its left (:class:`TaskChain`)."""
    if not tasks:
        raise ValueError("chain() needs at least one task")
    last = tasks[0]
    for item in tasks[1:]:
        last = last >> item
    return TaskChain(tasks[0], last)


def parallel(*tasks: Executable) -> ParallelGroup:
    """``parallel(a, b, c)`` is ``a | b | c`` (upstream Graflow 0.2's helper)."""
    if len(tasks) < 2:
        raise ValueError(f"parallel() needs at least two tasks, got {len(tasks)}")
    group = tasks[0] | tasks[1]
    for item in tasks[2:]:
        group = group | item
    return group
