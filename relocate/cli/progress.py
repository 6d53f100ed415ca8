"""What ``relocate import`` shows while it runs, from the target's ``relocate_progress``.

A thread of the launching process sums the import's progress rows every second
(``relocate.db.progress.read_snapshot``, one cheap query) and hands the sums to a view:

* on a terminal, ``TerminalView``: a live rich display of the export's bytes read, the rows
  validated, and one bar per stage with its rows written out of its total, rate and ETA;
* otherwise, ``PlainView``: one line when a stage starts and one when it ends, plus a
  status line every 30 seconds (rows written, rate, ETA).

``RELOCATE_PROGRESS=terminal|plain`` forces the view (tests; a terminal that is not one),
``RELOCATE_STATUS_INTERVAL=SECONDS`` changes the 30 seconds.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Protocol, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
)
from rich.text import Text

from relocate.db.progress import Snapshot, read_snapshot

#: Seconds between two status lines when stderr is not a terminal.
STATUS_EVERY = 30.0
#: Seconds between two looks at the target's progress rows.
POLL_EVERY = 1.0


class View(Protocol):
    def update(self, snap: Snapshot, now: float) -> None: ...

    def close(self, snap: Snapshot | None, now: float) -> None: ...


def human_bytes(n: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n:,.1f} TB"  # pragma: no cover - the loop returns


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class StageLines:
    """The lines of a stage starting and ending, derived from successive snapshots.

    A stage starts with the first batch this run recorded for it; it ends when its rows
    written (by any run of the import) and passed over reach its total, or when a later
    stage starts (the stages run one after another). A stage an earlier run wrote in full
    is said so once this run's writes have begun.
    """

    def __init__(self) -> None:
        self.started: dict[int, float] = {}
        self.ended: set[int] = set()

    def lines(self, snap: Snapshot, now: float) -> list[str]:
        out: list[str] = []
        if not snap.writing():
            return out
        latest = max(snap.first_write)
        for stage in sorted(set(snap.validated) | set(snap.first_write)):
            total = snap.validated.get(stage, 0)
            if stage in self.ended:
                continue
            if stage not in self.started:
                if stage in snap.first_write:
                    self.started[stage] = now
                    out.append(f"Stage {stage} started: {total:,} rows to write.")
                elif total and snap.done(stage) >= total and stage < latest:
                    self.ended.add(stage)
                    out.append(f"Stage {stage}: all {total:,} rows written by an earlier run.")
                    continue
                else:
                    continue
            if snap.done(stage) >= total or stage < latest:
                self.ended.add(stage)
                out.append(
                    f"Stage {stage} done: {snap.written.get(stage, 0):,} rows written "
                    f"in {now - self.started[stage]:.1f} s."
                )
        return out


class Rate:
    """Rows written per second by this run, from the first snapshot with writes."""

    def __init__(self) -> None:
        self._first: tuple[float, int] | None = None

    def rows_per_second(self, snap: Snapshot, now: float) -> float | None:
        done = sum(snap.done(s) for s in snap.validated)
        if not snap.writing():
            return None
        if self._first is None:
            self._first = (now, done)
            return None
        t0, d0 = self._first
        return (done - d0) / (now - t0) if now > t0 and done > d0 else None


def status_line(snap: Snapshot, rate: float | None, elapsed: float) -> str:
    """The 30-second status line."""
    if not snap.writing():
        read = human_bytes(snap.bytes_read)
        if snap.export_bytes:
            pct = min(100.0, 100.0 * snap.bytes_read / snap.export_bytes)
            read += f" of {human_bytes(snap.export_bytes)} ({pct:.0f}%)"
        return (
            f"Reading and validating ({_duration(elapsed)}): {read} read, "
            f"{snap.rows_read:,} rows read, {snap.total_validated:,} validated."
        )
    total = snap.total_validated
    done = sum(min(snap.done(s), n) for s, n in snap.validated.items())
    pct = 100.0 * done / total if total else 100.0
    line = f"Writing ({_duration(elapsed)}): {done:,} of {total:,} rows ({pct:.0f}%)"
    if rate:
        line += f", {rate:,.0f} rows/s, about {_duration((total - done) / rate)} left"
    return line + "."


class PlainView:
    """Lines for a log: stages starting and ending, and a status line every so often."""

    def __init__(self, out: TextIO, status_every: float, start: float) -> None:
        self._out = out
        self._every = status_every
        self._start = start
        self._last_status = start
        self._stages = StageLines()
        self._rate = Rate()

    def update(self, snap: Snapshot, now: float) -> None:
        lines = self._stages.lines(snap, now)
        rate = self._rate.rows_per_second(snap, now)
        if now - self._last_status >= self._every:
            self._last_status = now
            lines.append(status_line(snap, rate, now - self._start))
        for line in lines:
            print(line, file=self._out, flush=True)

    def close(self, snap: Snapshot | None, now: float) -> None:
        if snap is not None:
            for line in self._stages.lines(snap, now):
                print(line, file=self._out, flush=True)


class TerminalView:
    """rich's live progress display: export bytes, rows validated, one bar per stage."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            TextColumn("{task.description:<16}"),
            BarColumn(),
            TaskProgressColumn(),
            _CountColumn(),
            _RateColumn(),
            _EtaColumn(),
            console=console,
            auto_refresh=False,  # refreshed at each poll, from the polling thread
            transient=False,
        )
        self._read = self._progress.add_task("Export read", total=None, unit="bytes")
        self._validated = self._progress.add_task("Rows validated", total=None, unit="rows")
        self._stages: dict[int, Any] = {}
        self._progress.start()

    def update(self, snap: Snapshot, now: float) -> None:
        del now
        p = self._progress
        p.update(self._read, completed=max(snap.bytes_read, 0), total=snap.export_bytes)
        validated = snap.total_validated
        p.update(
            self._validated,
            completed=validated,
            total=validated if snap.writing() else None,
        )
        for stage in sorted(snap.validated):
            total = snap.validated[stage]
            if stage not in self._stages:
                self._stages[stage] = p.add_task(f"Stage {stage}", total=total, unit="rows")
            p.update(self._stages[stage], completed=min(snap.done(stage), total), total=total)
        p.refresh()

    def close(self, snap: Snapshot | None, now: float) -> None:
        if snap is not None:
            self.update(snap, now)
        self._progress.stop()


class _CountColumn(ProgressColumn):
    """``done/total`` in the task's unit (bytes or rows)."""

    def render(self, task: Task) -> Text:
        unit = task.fields.get("unit", "rows")
        done = human_bytes(task.completed) if unit == "bytes" else f"{int(task.completed):,}"
        if task.total is None:
            return Text(done if unit == "bytes" else f"{done} rows")
        total = human_bytes(task.total) if unit == "bytes" else f"{int(task.total):,} rows"
        return Text(f"{done}/{total}")


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if not speed:
            return Text("")
        unit = task.fields.get("unit", "rows")
        return Text(f"{human_bytes(speed)}/s" if unit == "bytes" else f"{speed:,.0f} rows/s")


class _EtaColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        if task.finished or task.total is None:
            return Text("")
        left = task.time_remaining
        return Text(f"ETA {_duration(left)}" if left is not None else "ETA -")


class ProgressWatch:
    """Polls the import's progress in a thread of the launcher and feeds a view.

    Holds one connection of its own (autocommit) while the import runs; a failed poll
    (the import's tables not created yet, a lost connection) is tried again at the next.
    """

    def __init__(
        self, target: Any, import_uuid: str, run_id: str, view: View, every: float = POLL_EVERY
    ) -> None:
        self._target = target
        self._uuid = import_uuid
        self._run_id = run_id
        self._view = view
        self._every = every
        self._stop = threading.Event()
        self._conn: Any = None
        self._thread = threading.Thread(target=self._run, name="relocate-progress", daemon=True)

    def __enter__(self) -> ProgressWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._view.close(self._poll(), time.monotonic())
        if self._conn is not None:
            self._conn.close()

    def _poll(self) -> Snapshot | None:
        from relocate.db.target import connect

        try:
            if self._conn is None or self._conn.closed or self._conn.broken:
                self._conn = connect(
                    self._target,
                    autocommit=True,
                    connect_timeout=5,
                    application_name="relocate-progress",
                )
            return read_snapshot(self._conn, self._uuid, self._run_id)
        except Exception:  # noqa: BLE001 - progress is best effort
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            return None

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            snap = self._poll()
            if snap is not None and not self._stop.is_set():
                self._view.update(snap, time.monotonic())


def make_view(err: TextIO, start: float) -> tuple[View, float]:
    """The view for ``err`` (terminal or not, or as ``RELOCATE_PROGRESS`` says) and the
    seconds between polls."""
    mode = os.environ.get("RELOCATE_PROGRESS", "")
    terminal = mode == "terminal" or (mode != "plain" and _isatty(err))
    every = float(os.environ.get("RELOCATE_STATUS_INTERVAL", STATUS_EVERY))
    if terminal:
        return TerminalView(Console(file=err, force_terminal=True)), POLL_EVERY
    return PlainView(err, every, start), min(POLL_EVERY, every)


def watch_progress(settings: Any, err: TextIO, start: float) -> ProgressWatch:
    """The progress display of the import of ``settings``, written to ``err``."""
    view, every = make_view(err, start)
    return ProgressWatch(settings, settings.import_uuid, settings.run_id, view, every)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
