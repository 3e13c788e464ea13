"""Developer and CI sessions. They run in the workspace venv that `uv sync --all-packages` builds
(`uv run nox -s NAME`), so no session reinstalls anything; `bench` builds its peers' venvs itself."""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "none"
nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.error_on_missing_interpreters = True

PACKAGES = {
    "core": "tests/core",
    "redis": "tests/redis",
    "docker": "tests/docker",
    "s3": "tests/checkpoint_s3",
    "observability": "tests/observability",
}


@nox.session
def lint(session: nox.Session) -> None:
    """ruff lint and format check over the whole tree."""
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over every package's src/ (configured in pyproject.toml)."""
    session.run("mypy")


@nox.session
def tests(session: nox.Session) -> None:
    """The whole suite in one pytest run: unit, conformance, integration (real services), examples."""
    session.run("pytest", *session.posargs)


@nox.session
@nox.parametrize("package", list(PACKAGES))
def package_tests(session: nox.Session, package: str) -> None:
    """One package's unit and conformance tests."""
    session.run("pytest", PACKAGES[package], *session.posargs)


@nox.session
def integration(session: nox.Session) -> None:
    """Real redis-server, dockerd and moto; workers killed with SIGTERM and SIGKILL."""
    session.run("pytest", "tests/integration", *session.posargs)


@nox.session
def examples(session: nox.Session) -> None:
    """Every script under examples/, each checking its own results."""
    session.run("pytest", "tests/examples", *session.posargs)


@nox.session
def compat(session: nox.Session) -> None:
    """Upstream Graflow 0.2's examples and black-box tests, ported (issue 12): drop-in compatibility."""
    session.run("pytest", "tests/compat", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """The side-by-side performance table (issue #7): Graflow and its peers on the same workloads."""
    session.run("python", "benchmarks/run.py", *session.posargs)
