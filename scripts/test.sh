#!/usr/bin/env bash
# The whole test suite, on a fresh machine as root: installs uv and the workspace, installs and
# starts what the tests need (redis-server, dockerd, the local Docker test image), then runs lint,
# type checks and every test (core, redis, docker, s3, integration, examples) through nox.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet "uv>=0.8"
uv sync --all-packages --frozen

# The test image must carry the same cloudpickle as the venv that runs the tests.
GRAFLOW_PYTHON="$PWD/.venv/bin/python" bash scripts/services.sh

# No-PyPI-sibling guard: every graflow package must be the workspace's editable copy.
.venv/bin/python - <<'PY'
import importlib, pathlib, sys
root = pathlib.Path.cwd().resolve()
for mod in ("graflow", "graflow_redis", "graflow_docker", "graflow_checkpoint_s3", "graflow_observability"):
    path = pathlib.Path(importlib.import_module(mod).__file__).resolve()
    if root not in path.parents:
        sys.exit(f"{mod} is imported from {path}, not from this checkout: a PyPI copy slipped in")
PY

exec uv run --frozen nox -s lint typecheck tests "$@"
