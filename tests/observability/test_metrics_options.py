"""``graflow worker --metrics-port/--metrics-addr``: parsing, environment defaults, and no cost when absent."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from graflow.worker.main import build_parser


def test_options_and_their_environment_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GRAFLOW_METRICS_PORT", raising=False)
    monkeypatch.delenv("GRAFLOW_METRICS_ADDR", raising=False)
    args = build_parser().parse_args([])
    assert (args.metrics_port, args.metrics_addr) == (None, "127.0.0.1")  # off, and local only, by default
    assert build_parser().parse_args(["--metrics-port", "9108", "--metrics-addr", "0.0.0.0"]).metrics_port == 9108
    monkeypatch.setenv("GRAFLOW_METRICS_PORT", "9200")
    monkeypatch.setenv("GRAFLOW_METRICS_ADDR", "0.0.0.0")
    args = build_parser().parse_args([])
    assert (args.metrics_port, args.metrics_addr) == (9200, "0.0.0.0")


@pytest.mark.parametrize("value", ["70000", "http"])
def test_a_bad_port_is_refused_by_name(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["--metrics-port", value])
    assert exited.value.code == 2
    assert "--metrics-port must be" in capsys.readouterr().err


def test_without_a_port_nothing_is_loaded_or_served() -> None:
    script = """
        import sys
        from graflow_observability import metrics
        metrics.graflow_worker_started(worker_id="w", worker=None, queue=None, options={"metrics_port": None})
        metrics.graflow_worker_task_done(worker=None, handler="direct", duration_s=0.1, error=None)
        metrics.graflow_worker_stopped(worker=None)
        assert metrics._ACTIVE == {}
        assert "prometheus_client" not in sys.modules, "prometheus_client was imported without --metrics-port"
    """
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
