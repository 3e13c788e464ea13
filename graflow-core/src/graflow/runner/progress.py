"""Progress of a ``graflow run``: a live status line on a terminal, one plain line per event elsewhere.

Both are listeners of the :class:`~graflow.runner.recorder.RunRecorder` and write to the stream the
CLI hands them (the CLI owns stdout; nothing here picks a stream). The live display redraws from a
renderer thread that waits on an Event with a 0.1 s timeout, for the clock: events only update
counts under the recorder's lock, so a run of thousands of tasks a second is not slowed by drawing.
Failures and retries are also written as lines above the status line, and so are log events
(``log_file``), so the status line never gets torn by other output.
"""

from __future__ import annotations

import shutil
import threading
import time
from typing import Any, TextIO

from graflow.runner.recorder import RunRecorder, TaskRecord

_CLEAR = "\r\x1b[2K"
_HIDE_CURSOR = "\x1b[?25l"
_SHOW_CURSOR = "\x1b[?25h"
_GREEN, _RED, _YELLOW, _BLUE, _DIM, _RESET = "\x1b[32m", "\x1b[31m", "\x1b[33m", "\x1b[34m", "\x1b[2m", "\x1b[0m"
_SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
REFRESH_S = 0.1


def format_elapsed(seconds: float) -> str:
    minutes, secs = divmod(max(0.0, seconds), 60)
    hours, minutes = divmod(int(minutes), 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:04.1f}"
    return f"{minutes}:{secs:04.1f}"


def _first_line(error: Any) -> str:
    text = f"{type(error).__name__}: {error}"
    return text.splitlines()[0] if text else text


class PlainProgress:
    """One line per event: for pipes, files and CI logs."""

    def __init__(self, stream: TextIO, recorder: RunRecorder, workflow: str) -> None:
        self.stream = stream
        self.recorder = recorder
        self.workflow = workflow
        self.started = time.monotonic()
        self._lock = threading.Lock()

    @property
    def log_file(self) -> TextIO | None:
        return None  # logs go to stderr as they are

    def start(self) -> None:
        self.started = time.monotonic()

    def stop(self) -> None:
        return None

    def _line(self, text: str) -> None:
        with self._lock:
            self.stream.write(f"[{time.monotonic() - self.started:9.3f}s] {text}\n")
            self.stream.flush()

    def on_event(self, kind: str, record: TaskRecord | None, detail: dict[str, Any]) -> None:
        if kind == "run_started":
            self._line(f"run started    {self.workflow} (session {detail['session_id']}, {self.recorder.total} tasks)")
            return
        if kind == "run_finished":
            done, total, _, failed, retried, _ = self.recorder.snapshot()
            error = detail["error"]
            outcome = "finished" if error is None else f"stopped: {_first_line(error)}"
            self._line(f"run {outcome} ({done}/{total} done, {failed} failed, {retried} retried)")
            return
        assert record is not None
        task = record.task_id
        cycle = detail.get("cycle", 1)
        suffix = f" (cycle {cycle})" if cycle and cycle > 1 else ""
        if kind == "task_started":
            self._line(f"started        {task}{suffix}")
        elif kind == "task_succeeded":
            worker = f" on {record.worker}" if record.worker else ""
            self._line(f"succeeded      {task}{suffix} in {detail['duration_s']:.3f}s{worker}")
        elif kind == "task_failed":
            worker = f" on {record.worker}" if record.worker else ""
            self._line(f"failed         {task}{suffix}{worker}: {_first_line(detail['error'])}")
        elif kind == "task_retrying":
            self._line(
                f"retrying       {task}{suffix}: attempt {detail['attempt']} failed "
                f"({_first_line(detail['error'])}); next in {detail['delay_s']:.2f}s"
            )
        elif kind == "task_cache_hit":
            self._line(f"cache hit      {task}{suffix}")


class _Above:
    """A file-like object for log events: each complete line goes above the live status line
    (``print`` writes a message and its newline in two calls)."""

    def __init__(self, display: LiveProgress) -> None:
        self._display = display
        self._pending = ""

    def write(self, text: str) -> int:
        self._pending += text
        if "\n" in self._pending:
            complete, _, self._pending = self._pending.rpartition("\n")
            self._display.write_above(complete + "\n")
        return len(text)

    def flush(self) -> None:
        return None


class LiveProgress:
    """A status line redrawn in place (ANSI escapes), with failures and retries printed above it."""

    def __init__(self, stream: TextIO, recorder: RunRecorder, workflow: str, log_stream: TextIO | None = None) -> None:
        self.stream = stream
        self.recorder = recorder
        self.workflow = workflow
        self.log_stream = log_stream or stream
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._frame = 0
        self._shown = False

    @property
    def log_file(self) -> Any:
        return _Above(self)

    def start(self) -> None:
        self.started = time.monotonic()
        self.stream.write(_HIDE_CURSOR)
        self._thread = threading.Thread(target=self._render_loop, name="graflow-progress", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            self._draw_locked()  # the final counts stay on screen
            self.stream.write("\n" + _SHOW_CURSOR)
            self.stream.flush()
            self._shown = False

    def _render_loop(self) -> None:
        while not self._stop.wait(REFRESH_S):
            with self._lock:
                try:
                    self._draw_locked()
                except (OSError, ValueError):  # the terminal went away: stop drawing, the run goes on
                    return

    def status_line(self) -> str:
        done, total, running, failed, retried, running_ids = self.recorder.snapshot()
        self._frame += 1
        spinner = _SPINNER[self._frame % len(_SPINNER)]
        parts = [
            f"{spinner} {self.workflow}",
            f"{_GREEN}{done}/{total} done{_RESET}",
            f"{running} running",
            f"{_RED if failed else ''}{failed} failed{_RESET if failed else ''}",
            f"{_YELLOW if retried else ''}{retried} retried{_RESET if retried else ''}",
            format_elapsed(time.monotonic() - self.started),
        ]
        line = "  ".join(parts)
        if running_ids:
            line += f"  {_DIM}▸ {', '.join(running_ids[:5])}{' …' if len(running_ids) > 5 else ''}{_RESET}"
        return line

    def _draw_locked(self) -> None:
        width = shutil.get_terminal_size((100, 20)).columns
        line = self.status_line()
        self.stream.write(_CLEAR + _truncate(line, width - 1))
        self.stream.flush()
        self._shown = True

    def write_above(self, text: str) -> None:
        """Write ``text`` (lines) above the status line, then redraw it."""
        with self._lock:
            if self._shown:
                self.stream.write(_CLEAR)
                self.stream.flush()
            target = self.log_stream
            target.write(text if text.endswith("\n") else text + "\n")
            target.flush()
            if self._thread is not None and not self._stop.is_set():
                self._draw_locked()

    def on_event(self, kind: str, record: TaskRecord | None, detail: dict[str, Any]) -> None:
        if record is None:
            return
        if kind == "task_failed":
            self.write_above(f"{_RED}✗ {record.task_id}{_RESET} failed: {_first_line(detail['error'])}")
        elif kind == "task_retrying":
            self.write_above(
                f"{_YELLOW}↻ {record.task_id}{_RESET} attempt {detail['attempt']} failed "
                f"({_first_line(detail['error'])}); retrying in {detail['delay_s']:.2f}s"
            )
        elif kind == "task_cache_hit":
            self.write_above(f"{_BLUE}◆ {record.task_id}{_RESET} cache hit")


def _truncate(line: str, width: int) -> str:
    """Cut ``line`` to ``width`` visible characters, escapes not counted, so it never wraps."""
    out, visible, index = [], 0, 0
    while index < len(line):
        if line[index] == "\x1b":
            end = line.find("m", index)
            if end == -1:
                break
            out.append(line[index : end + 1])
            index = end + 1
            continue
        if visible >= width:
            break
        out.append(line[index])
        visible += 1
        index += 1
    return "".join(out) + _RESET
