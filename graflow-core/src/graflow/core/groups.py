"""Parallel groups inside a run: the barrier, member outcomes, error policies, member execution.

Split from engine.py (one job per module): ``_Run`` mixes in :class:`GroupRunning`; coordinators
get a :class:`MemberRunner` to execute members in this process or to build requests for another.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from graflow.cache.runtime import report_shipped_hit
from graflow.cache.runtime import shipping_config as cache_shipping_config
from graflow.channels.views import apply_channel_ops
from graflow.coordination.base import MemberOutcome, MemberRun
from graflow.core.attempts import attempts_made
from graflow.core.context import ExecutionContext, TaskExecutionContext
from graflow.core.execution import Execute
from graflow.core.remote import RemoteRequest
from graflow.core.task import Executable, ParallelGroup, TaskWrapper
from graflow.exceptions import (
    GraflowError,
    MaxCyclesExceededError,
    MaxStepsExceededError,
    ParallelGroupError,
    TaskExecutionError,
    TaskTimeoutError,
)
from graflow.policies import ErrorHandlingPolicy, NamedPolicy

if TYPE_CHECKING:
    from graflow.core.attempt_options import AttemptOptions
    from graflow.core.engine import WorkflowEngine
    from graflow.core.graph import TaskGraph


class GroupRunning:
    """The group half of a run (mixed into the engine's ``_Run``, which provides the attributes
    below and the task-reporting methods stubbed here for the type checker)."""

    ctx: ExecutionContext
    engine: WorkflowEngine
    run_id: str
    rlog: Any
    debug: bool
    timed: bool
    on_started: Any
    default_max_cycles: int | None
    default_attempts: AttemptOptions | None  # the run's default retries (default_max_retries)
    execute_task: Execute  # execute(), or its variant applying default_attempts

    def _failed(
        self,
        task_id: str,
        cycle: int,
        duration: float,
        exc: BaseException,
        attempts: int = 1,
        worker_id: str | None = None,
    ) -> None:
        raise NotImplementedError

    def _succeeded(
        self, task_id: str, cycle: int, duration: float, result: Any, attempts: int = 1, worker_id: str | None = None
    ) -> None:
        raise NotImplementedError

    def _execute_observed(self, handler: Any, task: TaskWrapper, tctx: TaskExecutionContext) -> Any:
        raise NotImplementedError

    def run_group(self, group: ParallelGroup, parent: TaskExecutionContext) -> dict[str, Any]:
        """Run every member to completion (the barrier), then apply the group's error policy.

        Returns ``{member_id: result}`` of the members that succeeded. Members' ``next_task`` requests
        become successors of the group; their checkpoint requests are written after the barrier.
        The ``graflow_group_*`` hooks, when implemented, are called around it.
        """
        hooks = self.engine.host.lifecycle
        on_started, on_finished = hooks["graflow_group_started"], hooks["graflow_group_finished"]
        if on_started is None and on_finished is None:
            return self._run_group(group, parent)
        where = {"run_id": self.run_id, "session_id": self.ctx.session_id, "group_id": group.task_id}
        cycle = parent.cycle_count
        if on_started is not None:
            members = [m.task_id for m in group.members]
            on_started(**where, cycle=cycle, members=members, backend=str(group.backend))
        t0 = time.perf_counter()
        error: BaseException | None = None
        try:
            return self._run_group(group, parent)
        except BaseException as exc:
            error = exc
            raise
        finally:
            if on_finished is not None:
                on_finished(**where, cycle=cycle, duration_s=time.perf_counter() - t0, error=error)

    def _run_group(self, group: ParallelGroup, parent: TaskExecutionContext) -> dict[str, Any]:
        ctx = self.ctx
        options = {**self.engine.config, **ctx.config, **group.execution_options}
        factory = self.engine.host.get("coordination backend", group.backend).factory
        policy = group.policy or ErrorHandlingPolicy.STRICT
        if isinstance(policy, NamedPolicy):  # resolved before members run: a typo fails even if none fails
            policy = self.engine.host.get("policy", policy.policy_name).factory(**policy.options)
        coordinator = factory(options)
        runner = MemberRunner(self, group)
        timeout = options.get("group_timeout")
        deadline = time.monotonic() + float(timeout) if timeout else None
        cycles = ctx.cycle_counts
        expected: set[tuple[str, int]] = set()
        failures: dict[str, BaseException] = {}
        successes: list[str] = []
        checkpoints: list[tuple[dict[str, Any], str | None]] = []
        first = [MemberRun(m.task_id, cycles.get(m.task_id, 0) + 1) for m in group.members]
        expected.update((r.task_id, r.cycle) for r in first)
        if self.debug:
            self.rlog.debug("group_started", group_id=group.task_id, members=len(first), backend=group.backend)
        coordinator.open(runner)
        completed = False
        try:
            coordinator.submit(first)
            while expected:
                wait = None if deadline is None else deadline - time.monotonic()
                if wait is not None and wait <= 0:  # checked before each collect: DIRECT runs a member in it
                    unfinished = sorted({t for t, _ in expected})
                    timeout_error = TaskTimeoutError(
                        f"parallel group {group.task_id!r} timed out after {timeout}s with "
                        f"{len(expected)} member runs unfinished: {unfinished[:10]}"
                    )
                    # Data, not only the message: reports mark these members failed (the group's timeout
                    # stopped them), not interrupted. Attributes survive pickling (GraflowError.__reduce__).
                    timeout_error.group_id = group.task_id  # type: ignore[attr-defined]
                    timeout_error.unfinished = unfinished  # type: ignore[attr-defined]
                    timeout_error.timeout_s = timeout  # type: ignore[attr-defined]
                    raise timeout_error
                outcomes = coordinator.collect(wait)
                if not outcomes:
                    continue
                again = []
                for outcome in outcomes:
                    key = (outcome.task_id, outcome.cycle)
                    if key not in expected:
                        continue  # a redelivered duplicate: the first outcome counted
                    expected.discard(key)
                    run = self._settle_member(group, outcome, parent, failures, successes, checkpoints)
                    if run is not None:
                        expected.add((run.task_id, run.cycle))
                        again.append(run)
                if again:
                    coordinator.submit(again)
            completed = True
        finally:
            if completed:
                coordinator.close()
            else:
                coordinator.abort()
        self._apply_policy(group, policy, failures, successes)
        if checkpoints:  # written by _advance, after the group's successors queue; every member's request
            parent._checkpoints = [*(parent._checkpoints or ()), *checkpoints]
        return {task_id: ctx.results.get(task_id) for task_id in successes}

    def _settle_member(
        self,
        group: ParallelGroup,
        outcome: MemberOutcome,
        parent: TaskExecutionContext,
        failures: dict[str, BaseException],
        successes: list[str],
        checkpoints: list[tuple[dict[str, Any], str | None]],
    ) -> MemberRun | None:
        """Record one member outcome; returns the next run when the member asked for an iteration."""
        ctx = self.ctx
        ctx.steps += 1
        if ctx.steps > ctx.max_steps:
            raise MaxStepsExceededError(ctx.max_steps, outcome.task_id)
        ctx.cycle_counts[outcome.task_id] = outcome.cycle
        if outcome.channel_ops:
            apply_channel_ops(ctx.channel, outcome.channel_ops)
        if outcome.error is not None:
            failures[outcome.task_id] = outcome.error
            # A result from an earlier cycle must not stand in for this failed one (best effort goes on).
            ctx.results.pop(outcome.task_id, None)
            ctx.completed.discard(outcome.task_id)
            if outcome.worker_id is not None:  # in-process members reported this already
                self._failed(
                    outcome.task_id,
                    outcome.cycle,
                    outcome.duration_s,
                    outcome.error,
                    outcome.attempts,
                    outcome.worker_id,
                )
            return None
        ctx.results[outcome.task_id] = outcome.result
        if outcome.cache_hit is not None:  # came from the cache in another process
            report_shipped_hit(self, outcome.task_id, outcome.cycle, outcome.cache_hit)
        if outcome.worker_id is not None:
            self._succeeded(
                outcome.task_id, outcome.cycle, outcome.duration_s, outcome.result, outcome.attempts, outcome.worker_id
            )
        for task, goto in outcome.next_tasks:
            parent.next_task(_local_twin(ctx.graph, task), goto=goto)
        if outcome.control is not None and (parent._control is None or parent._control[0] != "cancel"):
            # A member's cancel wins over another member's terminate, whatever order they finish in.
            parent._control = outcome.control
            parent._control_task = outcome.task_id  # errors and logs name the member, not its group
        if outcome.checkpoints:
            checkpoints.extend(outcome.checkpoints)
        if outcome.iterate is not None:
            member = ctx.graph.nodes[outcome.task_id]
            limit = getattr(member, "max_cycles", None) or self.default_max_cycles
            if limit is not None and outcome.cycle + 1 > limit:
                failures[outcome.task_id] = MaxCyclesExceededError(outcome.task_id, limit)
                return None
            return MemberRun(outcome.task_id, outcome.cycle + 1, outcome.iterate[0])
        ctx.completed.add(outcome.task_id)
        successes.append(outcome.task_id)
        return None

    def _apply_policy(
        self,
        group: ParallelGroup,
        policy: ErrorHandlingPolicy,
        failures: dict[str, BaseException],
        successes: list[str],
    ) -> None:
        if not failures:
            return
        failed = [(task_id, f"{type(exc).__name__}: {exc}") for task_id, exc in failures.items()]
        if policy.check_group(group, failures, list(successes), self.ctx):
            listing = "; ".join(f"{t} ({m})" for t, m in failed)
            raise ParallelGroupError(
                f"parallel group {group.task_id!r} failed under policy {policy.describe()}: "
                f"{len(failed)} of {len(failed) + len(successes)} members failed: {listing}",
                group_id=group.task_id,
                failed_tasks=failed,
                successful_tasks=successes,
                errors=failures,
            ) from next(iter(failures.values()))  # the first failure's traceback is printed with it
        self.rlog.warning(
            "group_members_failed",
            group_id=group.task_id,
            policy=policy.describe(),
            failed=[t for t, _ in failed],
        )


class MemberRunner:
    """Executes members for coordinators: in this process, or as a request for another one."""

    def __init__(self, run: GroupRunning, group: ParallelGroup) -> None:
        self._run = run
        self.context = run.ctx
        self.group = group
        self._shipping_config = run.ctx.channel.shipping_config(run.ctx.config)
        self._remote_context = run.engine.host.lifecycle["graflow_remote_context"]

    def _member(self, task_id: str) -> Executable:
        return self.context.graph.get(task_id)

    def run_member(self, run: MemberRun) -> MemberOutcome:
        r = self._run
        outcome = MemberOutcome(run.task_id, run.cycle)
        t0 = time.perf_counter()
        member: Executable | None = None
        tctx: TaskExecutionContext | None = None
        try:
            member = self._member(run.task_id)
            tctx = TaskExecutionContext(self.context, run.task_id, run.cycle, run.data)
            if isinstance(member, ParallelGroup):
                outcome.result = r.run_group(member, tctx)
            elif isinstance(member, TaskWrapper):
                handler = r.engine.handler(member.handler)
                if r.timed or r.on_started is not None:
                    outcome.result = r._execute_observed(handler, member, tctx)
                else:
                    outcome.result = r.execute_task(handler, member, tctx)
            else:
                raise GraflowError(f"group member {run.task_id!r} is not executable: {member!r}")
        except TaskExecutionError as exc:
            outcome.error = exc.original
            if tctx is not None:
                outcome.attempts = attempts_made(member, tctx)
            return outcome
        except BaseException as exc:  # not reported yet (the observed path raises TaskExecutionError)
            if tctx is not None:
                outcome.attempts = attempts_made(member, tctx)
            r._failed(run.task_id, run.cycle, time.perf_counter() - t0, exc, outcome.attempts)
            outcome.error = exc
            return outcome
        outcome.attempts = attempts_made(member, tctx)  # one getattr; counts a run's default retries too
        outcome.next_tasks = [(t, tctx._goto) for t in tctx._next_tasks or ()]
        outcome.iterate = tctx._iterate
        outcome.control = tctx._control
        outcome.checkpoints = tctx._checkpoints
        return outcome

    def build_request(self, run: MemberRun) -> RemoteRequest:
        member = self._member(run.task_id)
        if not isinstance(member, TaskWrapper):
            raise GraflowError(
                f"group member {run.task_id!r} is a {type(member).__name__}; only tasks can run in another "
                "process. Give the nested group its own stage (a >> (b | c) >> d) or run it with threading."
            )
        ctx = self.context
        tctx = TaskExecutionContext(ctx, run.task_id, run.cycle, run.data)
        engine = self._run.engine
        shared = ctx.channel_backend != "memory"
        channel_data = None
        if not shared:
            snapshot = getattr(ctx.channel, "snapshot", None)
            channel_data = snapshot() if snapshot is not None else ctx.channel.items()
        remote_context: dict[str, str] = {}
        if self._remote_context is not None:
            for extra in reversed(
                self._remote_context(
                    run_id=self._run.run_id,
                    session_id=ctx.session_id,
                    group_id=self.group.task_id,
                    task_id=run.task_id,
                    cycle=run.cycle,
                )
            ):  # pluggy calls the last registered first: its keys are applied last, so they win
                remote_context.update(extra)
            _check_remote_context(remote_context, run.task_id)
        return RemoteRequest(
            session_id=ctx.session_id,
            task=member,
            cycle=run.cycle,
            kwargs=member.resolve_kwargs(tctx),
            data=run.data,
            channel_backend=ctx.channel_backend,
            channel_config=self._shipping_config if shared else {},
            channel_data=channel_data,
            handler=engine._handlers[member.handler] if member.handler in engine._registered else None,
            cache_config=None if member._cache is None else cache_shipping_config(self._run, member),
            context=remote_context,
            default_attempts=self._run.default_attempts,
            max_cycles=member.max_cycles or self._run.default_max_cycles,
        )


def _check_remote_context(context: dict[str, str], task_id: str) -> None:
    """The remote context travels pickled and signed inside the payload: plain strings only."""
    for key, value in context.items():
        if type(key) is not str or type(value) is not str:
            raise GraflowError(
                f"a graflow_remote_context hook returned {key!r}: {value!r} for task {task_id!r}; the remote "
                "context carries plain strings only (str keys and str values). Convert the value in the plugin."
            )


def _local_twin(graph: TaskGraph, task: Executable) -> Executable:
    """The run's own node for a ``next_task`` target that came back from another process as a copy
    (a process pool or a worker unpickles its own): the same id and the same code mean the same
    task, not a second one with a duplicate id."""
    existing = graph.nodes.get(task.task_id)
    if existing is None or existing is task:
        return task
    if isinstance(existing, TaskWrapper) and isinstance(task, TaskWrapper):
        return existing if _same_code(existing.func, task.func) else task
    if isinstance(existing, ParallelGroup) and isinstance(task, ParallelGroup):
        same = [m.task_id for m in existing.members] == [m.task_id for m in task.members]
        return existing if same else task
    return task


def _same_code(a: Any, b: Any) -> bool:
    def identity(f: Any) -> tuple[Any, ...]:
        code = getattr(f, "__code__", None)
        return (getattr(f, "__module__", None), getattr(f, "__qualname__", None), getattr(code, "co_code", None))

    return identity(a) == identity(b)
