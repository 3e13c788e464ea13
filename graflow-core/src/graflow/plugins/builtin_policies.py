"""Built-in error policies, by name: ``group.with_policy("at_least_n", n=2)``."""

from __future__ import annotations

from typing import Any

from graflow.hookspecs import hookimpl
from graflow.plugins.registry import Registrar
from graflow.policies import AtLeastNPolicy, BestEffortPolicy, CriticalTasksPolicy, StrictPolicy


def _critical(tasks: Any = (), **options: Any) -> CriticalTasksPolicy:
    return CriticalTasksPolicy(options.get("critical_task_ids", tasks))


@hookimpl
def graflow_register_policies(register: Registrar) -> None:
    register("strict", StrictPolicy)
    register("best_effort", BestEffortPolicy)
    register("at_least_n", AtLeastNPolicy)
    register("critical_tasks", _critical)
