"""The error of a command line that cannot start a run (the CLI exits with status 2)."""

from __future__ import annotations

from graflow.exceptions import GraflowError


class UsageError(GraflowError, ValueError):
    """Bad input to ``graflow run`` / ``graflow show``: a missing file, an unknown workflow name, a
    malformed ``--param``, a module that fails to import. The message says what to fix."""
