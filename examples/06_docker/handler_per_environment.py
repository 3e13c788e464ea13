"""Different environments per handler (spec section 4, "Multi-version Testing" / "Data Science
Experiments"): each named handler runs its tasks in its own image, in one workflow.

The spec registers python:3.9 / 3.11 / 3.12 or two TensorFlow images; pickled task code only loads on
the host's Python major.minor, so here two images stand for two environments. Without a second
image, both names point at GRAFLOW_DOCKER_IMAGE.

Run:

    GRAFLOW_DOCKER_IMAGE=<image> [GRAFLOW_DOCKER_IMAGE_ALT=<other image>] \
        python examples/06_docker/handler_per_environment.py
"""

import os

from graflow import WorkflowEngine, task, workflow
from graflow_docker import DockerTaskHandler

STABLE = os.environ["GRAFLOW_DOCKER_IMAGE"]
CANDIDATE = os.environ.get("GRAFLOW_DOCKER_IMAGE_ALT", STABLE)


def environment() -> dict:
    import sys

    import cloudpickle

    return {
        "image": os.environ["IMAGE"],
        "python": sys.version.split()[0],
        "cloudpickle": cloudpickle.__version__,
    }


@task(handler="stable")
def test_on_stable() -> dict:
    return {**environment(), "tests_passed": sum(1 for n in range(100) if n * n >= 0)}


@task(handler="candidate")
def test_on_candidate() -> dict:
    return {**environment(), "tests_passed": sum(1 for n in range(100) if n * n >= 0)}


@task
def compare(test_on_stable: dict, test_on_candidate: dict) -> str:
    same = test_on_stable["tests_passed"] == test_on_candidate["tests_passed"]
    verdict = "same" if same else "different"
    return f"{test_on_stable['image']} vs {test_on_candidate['image']}: {verdict} results"


def main() -> None:
    engine = WorkflowEngine()
    engine.register_handler("stable", DockerTaskHandler(image=STABLE, environment={"IMAGE": STABLE}))
    engine.register_handler("candidate", DockerTaskHandler(image=CANDIDATE, environment={"IMAGE": CANDIDATE}))
    with workflow("environments") as wf:
        (test_on_stable | test_on_candidate) >> compare
    result, ctx = wf.execute(engine=engine, ret_context=True)
    print(result)
    assert ctx.get_result("test_on_stable")["image"] == STABLE
    assert ctx.get_result("test_on_candidate")["image"] == CANDIDATE
    assert result.endswith("same results")


if __name__ == "__main__":
    main()
