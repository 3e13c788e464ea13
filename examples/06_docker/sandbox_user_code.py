"""Security sandbox (spec section 4, "Real-World Use Cases"): run user-submitted code in a container.

The container has no network, a read-only filesystem, no capabilities, a memory and process cap and a
timeout. ``safe_output=True`` makes the host read the container's report as JSON and never unpickle
it, so code inside cannot smuggle code out either.

Run:

    GRAFLOW_DOCKER_IMAGE=$(bash scripts/build-test-image.sh) python examples/06_docker/sandbox_user_code.py
"""

import os

from graflow import TaskWrapper, WorkflowEngine, workflow
from graflow.exceptions import TaskExecutionError, TaskTimeoutError
from graflow_docker import DockerTaskHandler

SANDBOX = DockerTaskHandler(
    image=os.environ["GRAFLOW_DOCKER_IMAGE"],
    network_mode="none",
    mem_limit="64m",
    timeout=5,
    user="nobody",
    safe_output=True,
    run_options={"read_only": True, "cap_drop": ["ALL"], "pids_limit": 32},
)


def execute_user_code(user_code: str):
    """Execute user-submitted code safely (the spec's task, returning what the code computed)."""
    scope: dict = {}
    exec(user_code, scope)
    return scope.get("result", "Executed safely")


def run_submission(code: str):
    engine = WorkflowEngine()
    engine.register_handler("sandbox", SANDBOX)
    with workflow("sandbox") as wf:
        wf.add(TaskWrapper("execute_user_code", execute_user_code, handler="sandbox", kwargs={"user_code": code}))
    return wf.execute(engine=engine)


SUBMISSIONS = {
    "sums": "result = sum(range(10))",
    "reads host secrets": "result = open('/etc/graflow-host-secret').read()",
    "writes to disk": "open('/usr/evil', 'w').write('x')",
    "phones home": "import socket; socket.create_connection(('1.1.1.1', 80), timeout=2)",
    "never ends": "while True: pass",
}


def main() -> None:
    outcomes = {}
    for name, code in SUBMISSIONS.items():
        try:
            outcomes[name] = ("ok", run_submission(code))
        except TaskExecutionError as exc:
            error = exc.original
            kind = (
                "timeout"
                if isinstance(error, TaskTimeoutError)
                else getattr(error, "remote_type", type(error).__name__)
            )
            outcomes[name] = ("refused", kind)
        print(f"{name:>20}: {outcomes[name]}")

    assert outcomes["sums"] == ("ok", 45)
    assert outcomes["reads host secrets"] == ("refused", "FileNotFoundError")
    assert outcomes["writes to disk"][1] in ("OSError", "PermissionError")  # read-only root filesystem
    assert outcomes["phones home"] == ("refused", "OSError")  # network_mode="none"
    assert outcomes["never ends"] == ("refused", "timeout")


if __name__ == "__main__":
    main()
