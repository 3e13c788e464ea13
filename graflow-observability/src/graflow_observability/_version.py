"""The package's version, read once from its metadata."""

from __future__ import annotations

import importlib.metadata

try:
    VERSION = importlib.metadata.version("graflow-observability")
except importlib.metadata.PackageNotFoundError:  # running from a source tree
    VERSION = "0.0.0"
