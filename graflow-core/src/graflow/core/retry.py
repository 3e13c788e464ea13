"""Upstream Graflow 0.2's retry spellings, mapped onto :class:`~graflow.core.attempt_options.AttemptOptions`.

Upstream declares retries with ``@task(max_retries=N)``, ``@task(retry_policy=RetryPolicy(...))`` and
``ExecutionContext.create(..., default_max_retries=N)``. Graflow has one retry mechanism (the attempt
loop of :mod:`graflow.core.attempts`); this module only translates those spellings into its options,
so upstream code runs unchanged and behaves as it did there (see the README, "Coming from upstream").
"""

from __future__ import annotations

import random
from typing import Any

import attrs

from graflow.core.attempt_options import DEFAULT_BACKOFF, DEFAULT_MAX_DELAY, DEFAULT_RETRY_DELAY, AttemptOptions

ALIAS_RETRY_DELAY = 0.0
"""The delay of ``max_retries=N`` and of a run's default retries: upstream retries such a task at
once (it waits only when the task has a ``RetryPolicy``), unlike ``retries=N`` (1 s, doubling)."""


def _int_at_least_zero(owner: str, name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{owner}: {name} must be an int (retries after the first attempt), got {value!r}")
    if value < 0:
        raise ValueError(f"{owner}: {name} must be >= 0 (0 means a single attempt), got {value}")


def _seconds(owner: str, name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{owner}: {name} must be a number of seconds, got {value!r}")
    if value < 0:
        raise ValueError(f"{owner}: {name} must be >= 0 seconds, got {value}")


def _check_policy(policy: RetryPolicy, attribute: Any, value: Any) -> None:
    name = attribute.name
    if name == "max_retries":
        _int_at_least_zero("RetryPolicy", name, value)
    elif name in ("initial_interval", "max_interval"):
        _seconds("RetryPolicy", name, value)
    elif name == "backoff_factor":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"RetryPolicy: backoff_factor must be a number, got {value!r}")
        if value < 1:
            raise ValueError(f"RetryPolicy: backoff_factor must be >= 1 (1 keeps the delay constant), got {value}")
    elif name == "jitter" and not isinstance(value, bool):
        raise TypeError(f"RetryPolicy: jitter must be True or False, got {value!r}")


@attrs.frozen
class RetryPolicy:
    """Upstream's retry policy: ``@task(retry_policy=RetryPolicy(max_retries=3, initial_interval=0.1))``.

    Maps field by field onto the task's retry options: ``max_retries`` → ``retries``,
    ``initial_interval`` → ``retry_delay``, ``backoff_factor`` → ``backoff``, ``max_interval`` →
    ``max_delay``, ``jitter`` → ``jitter``. The defaults are upstream's (1 s, doubling, at most 60 s,
    no jitter, no retries). With ``jitter=True`` the delay is drawn from ``[d/2, d]`` (Graflow's
    equal jitter); upstream drew it from ``[d/2, 3d/2]``.
    """

    max_retries: int = attrs.field(default=0, validator=_check_policy)
    initial_interval: float = attrs.field(default=DEFAULT_RETRY_DELAY, validator=_check_policy)
    backoff_factor: float = attrs.field(default=DEFAULT_BACKOFF, validator=_check_policy)
    max_interval: float = attrs.field(default=DEFAULT_MAX_DELAY, validator=_check_policy)
    jitter: bool = attrs.field(default=False, validator=_check_policy)

    def __attrs_post_init__(self) -> None:
        if self.max_interval < self.initial_interval:
            raise ValueError(
                f"RetryPolicy: max_interval ({self.max_interval}) is shorter than initial_interval "
                f"({self.initial_interval}); raise max_interval or lower initial_interval"
            )

    def attempt_options(self) -> dict[str, Any]:
        """The task options this policy stands for (``AttemptOptions.build`` keywords)."""
        return {
            "retries": self.max_retries,
            "retry_delay": float(self.initial_interval),
            "backoff": float(self.backoff_factor),
            "max_delay": float(self.max_interval),
            "jitter": self.jitter,
        }

    def get_delay(self, retry_count: int, rand: Any = random.random) -> float:
        """The wait before retry number ``retry_count + 1`` (``retry_count`` retries made so far), as
        Graflow will wait it: ``min(max_interval, initial_interval * backoff_factor ** retry_count)``."""
        options = AttemptOptions.build("RetryPolicy", **self.attempt_options())
        return options.attempt_delay(retry_count + 1, rand)


_POLICY_FIELDS = ("retry_delay", "backoff", "max_delay", "jitter")


def resolve_retry_options(
    task_id: str,
    *,
    retries: int | None,
    max_retries: int | None,
    retry_policy: RetryPolicy | None,
    retry_delay: float | None,
    backoff: float | None,
    max_delay: float | None,
    jitter: bool | None,
) -> tuple[dict[str, Any], bool]:
    """The retry keywords for ``AttemptOptions.build`` from a task's declaration, and whether the
    task declared its retries itself (then a run's default retries do not apply to it).

    ``max_retries`` is upstream's name of ``retries`` (its delay defaults to 0, as upstream's);
    ``retry_policy`` gives them all at once. Giving one option twice is refused, naming both.
    """
    owner = f"task {task_id!r}"
    given = {name: value for name, value in zip(_POLICY_FIELDS, (retry_delay, backoff, max_delay, jitter), strict=True)}
    explicit = {name: value for name, value in given.items() if value is not None}
    if retries is not None and max_retries is not None:
        raise TypeError(
            f"{owner}: retries={retries!r} and max_retries={max_retries!r} are the same option "
            "(max_retries is upstream Graflow 0.2's name); give only one"
        )
    if retry_policy is not None:
        if not isinstance(retry_policy, RetryPolicy):
            raise TypeError(
                f"{owner}: retry_policy must be a graflow.core.retry.RetryPolicy, got {retry_policy!r}; "
                "or give retries=, retry_delay=, backoff=, max_delay=, jitter= directly"
            )
        clashing = [name for name, value in (("retries", retries), ("max_retries", max_retries)) if value is not None]
        clashing += list(explicit)
        if clashing:
            raise TypeError(
                f"{owner}: retry_policy= already sets {', '.join(clashing)}; give either the policy or the "
                "separate options (retries=, retry_delay=, backoff=, max_delay=, jitter=), not both"
            )
        return retry_policy.attempt_options(), True
    if max_retries is not None:
        _int_at_least_zero(owner, "max_retries", max_retries)
        count, delay_default = max_retries, ALIAS_RETRY_DELAY
    else:
        count, delay_default = (retries if retries is not None else 0), DEFAULT_RETRY_DELAY
    options: dict[str, Any] = {
        "retries": count,
        "retry_delay": delay_default if retry_delay is None else retry_delay,
        "backoff": DEFAULT_BACKOFF if backoff is None else backoff,
        "max_delay": max_delay,
        "jitter": True if jitter is None else jitter,
    }
    return options, retries is not None or max_retries is not None


def default_attempts(value: Any, source: str) -> AttemptOptions | None:
    """A run's default retries (``default_max_retries=N``, ``config={"max_retries": N}``) as options;
    None when there are none. Delays as upstream's: none (a failed task is retried at once)."""
    if value is None:
        return None
    _int_at_least_zero(source, "max_retries", value)
    if value == 0:
        return None
    return AttemptOptions.build(source, retries=value, retry_delay=ALIAS_RETRY_DELAY, jitter=False)


def with_default(task: Any, default: AttemptOptions) -> AttemptOptions | None:
    """The options one execution of ``task`` runs with in a run whose default is ``default``.

    A task that declared its retries (any of ``retries``, ``max_retries``, ``retry_policy``, even 0)
    keeps its own; a task with only a ``timeout`` gets the default's retries with its own timeout.
    """
    own: AttemptOptions | None = getattr(task, "attempts", None)
    if getattr(task, "_retries_declared", False):
        return own
    if own is None:
        return default
    return attrs.evolve(default, timeout=own.timeout, retry_on=own.retry_on)
