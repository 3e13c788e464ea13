"""``python -m graflow``: the same as the ``graflow`` command."""

from graflow.cli import main

raise SystemExit(main())
