"""The Celery app that both the bench driver and its ``celery worker`` processes import.

The broker and result-backend URLs come from the environment because the
worker processes are started by ``celery_bench.py`` against a Redis whose port
is only known at run time. Configuration is left at Celery's defaults apart
from what a Redis deployment needs, so the figures show Celery as shipped.
"""

from __future__ import annotations

import os
import time

from celery import Celery

BROKER_ENV = "BENCH_CELERY_BROKER_URL"
BACKEND_ENV = "BENCH_CELERY_RESULT_BACKEND"
# Must match common.W5_TASK_SECONDS; not imported so workers need nothing but this file.
SLEEP_SECONDS = 0.020

app = Celery("graflow_peer_bench")
app.conf.update(
    broker_url=os.environ.get(BROKER_ENV, "redis://127.0.0.1:6379/0"),
    result_backend=os.environ.get(BACKEND_ENV, "redis://127.0.0.1:6379/1"),
    broker_connection_retry_on_startup=True,  # only silences a Celery 6 deprecation warning
    worker_hijack_root_logger=False,
)


def use_redis(broker_url: str, backend_url: str) -> None:
    """Re-point the driver (before its first use of the app) and the workers it will start."""
    os.environ[BROKER_ENV] = broker_url
    os.environ[BACKEND_ENV] = backend_url
    app.conf.update(broker_url=broker_url, result_backend=backend_url)


@app.task(name="bench.noop")
def noop(i: int) -> int:
    return i


@app.task(name="bench.sleep")
def sleep(i: int) -> int:
    time.sleep(SLEEP_SECONDS)
    return i
