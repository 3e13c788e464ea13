"""Create one virtualenv per peer engine under ``benchmarks/.venvs/<peer>``.

Each peer gets its own venv so that their dependency trees (pydantic for
LangGraph, tornado for Dask, kombu for Celery) never meet each other or
Graflow's, and so that the versions measured are exactly the pinned ones in
``requirements-<peer>.txt``. The step is idempotent: a venv whose stamp file
holds the hash of its requirements file (and of the interpreter version) is
left alone, so the bench session can call this every time at no cost.

Usage: ``python benchmarks/peers/setup_venvs.py [--peer dask ...] [--force]``
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

PEERS_DIR = Path(__file__).resolve().parent
VENVS_DIR = PEERS_DIR.parent / ".venvs"
PEERS: tuple[str, ...] = ("langgraph", "dask", "celery")
STAMP_NAME = ".requirements.sha256"


def requirements_file(peer: str) -> Path:
    return PEERS_DIR / f"requirements-{peer}.txt"


def venv_dir(peer: str) -> Path:
    return VENVS_DIR / peer


def venv_python(peer: str) -> Path:
    """The interpreter the peer's bench script must be run with."""
    return venv_dir(peer) / "bin" / "python"


def _wanted_hash(peer: str, base_python: str) -> str:
    """Hash of the pinned requirements plus the base interpreter's version.

    The interpreter is part of the key because a venv built on another Python
    would silently keep working with different wheels.
    """
    version = subprocess.run(
        [base_python, "-c", "import sys; print(sys.version)"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    digest = hashlib.sha256()
    digest.update(requirements_file(peer).read_bytes())
    digest.update(version.encode())
    return digest.hexdigest()


def is_current(peer: str, base_python: str = sys.executable) -> bool:
    stamp = venv_dir(peer) / STAMP_NAME
    return (
        venv_python(peer).exists() and stamp.exists() and stamp.read_text().strip() == _wanted_hash(peer, base_python)
    )


def ensure_venv(peer: str, base_python: str = sys.executable, force: bool = False) -> Path:
    """Build (or rebuild) the peer's venv unless it already matches its pins."""
    if peer not in PEERS:
        raise ValueError(f"unknown peer {peer!r}; expected one of {PEERS}")
    if not force and is_current(peer, base_python):
        print(f"[setup] {peer}: up to date ({venv_dir(peer)})", file=sys.stderr)
        return venv_python(peer)

    print(f"[setup] {peer}: creating {venv_dir(peer)}", file=sys.stderr)
    stamp = venv_dir(peer) / STAMP_NAME
    # --clear: a half-built or stale venv is rebuilt from scratch rather than patched.
    subprocess.run([base_python, "-m", "venv", "--clear", str(venv_dir(peer))], check=True)
    subprocess.run(
        [
            str(venv_python(peer)),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
            str(requirements_file(peer)),
        ],
        check=True,
    )
    # Written last, so an interrupted install is retried next time.
    stamp.write_text(_wanted_hash(peer, base_python) + "\n")
    return venv_python(peer)


def ensure_venvs(
    peers: Iterable[str] = PEERS, base_python: str = sys.executable, force: bool = False
) -> dict[str, Path]:
    return {peer: ensure_venv(peer, base_python, force) for peer in peers}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer", action="append", choices=PEERS, help="only this peer (repeatable)")
    parser.add_argument("--python", default=sys.executable, help="base interpreter for the venvs")
    parser.add_argument("--force", action="store_true", help="rebuild even when up to date")
    args = parser.parse_args(argv)
    for peer, python in ensure_venvs(args.peer or PEERS, args.python, args.force).items():
        print(f"{peer}\t{python}")


if __name__ == "__main__":
    main()
