"""What ``relocate import`` prints while it runs and when it ends."""

from __future__ import annotations

import threading
import time
from typing import Any, TextIO

from relocate.cli.terminal import terminal_safe


class ProgressLine:
    """Prints Sentry's "Still importing" line every few seconds, with rows written."""

    def __init__(self, target: Any, import_uuid: str, out: TextIO, every: float = 5.0) -> None:
        self._target = target
        self._uuid = import_uuid
        self._out = out
        self._every = every
        self._stop = threading.Event()
        self._start = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ProgressLine:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def _run(self) -> None:
        from relocate.db.target import connect

        while not self._stop.wait(self._every):
            line = f"Still importing: {time.monotonic() - self._start:.2f} seconds elapsed."
            try:
                with connect(self._target, connect_timeout=5) as conn:
                    rows = conn.execute(
                        "SELECT stage, count(*) FROM relocate_pk_map WHERE import_uuid = %s "
                        "GROUP BY stage ORDER BY stage",
                        (self._uuid,),
                    ).fetchall()
                if rows:
                    written = sum(n for _, n in rows)
                    line += f" {written:,} rows written (up to stage {rows[-1][0]})."
            except Exception:  # noqa: BLE001 - progress is best effort
                pass
            print(line, file=self._out, flush=True)


def print_summary(summary: Any, out: TextIO) -> None:
    header = ("model", "read", "inserted", "existing", "overwritten", "skipped", "dropped")
    rows = [
        (terminal_safe(name), m.read, m.inserted, m.existing, m.overwritten, m.skipped, m.dropped)
        for name, m in sorted(summary.models.items())
    ]
    t = summary.total
    rows.append(("total", t.read, t.inserted, t.existing, t.overwritten, t.skipped, t.dropped))
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for i, row in enumerate([header, *rows]):
        if i == len(rows):
            print("  ".join("-" * w for w in widths), file=out)
        print(
            "  ".join(
                str(v).ljust(w) if j == 0 else str(v).rjust(w)
                for j, (v, w) in enumerate(zip(row, widths))
            ),
            file=out,
        )


def print_skips(summary: Any, out: TextIO) -> None:
    reasons: dict[tuple[str, str, str], int] = {}
    for entry in summary.report:
        if entry["action"] in ("skipped", "dropped"):
            key = (entry["action"], entry["model"], entry["reason"])
            reasons[key] = reasons.get(key, 0) + 1
    if not reasons:
        return
    print("Rows not imported:", file=out)
    for (action, model, reason), n in sorted(reasons.items()):
        print(f"  {n:>7,} {action} {terminal_safe(model)}: {terminal_safe(reason)}", file=out)


def format_finding(f: dict) -> str:
    """A finding as Sentry prints it, its model and reason escaped for the terminal."""
    return (
        f"RpcImportError(\n    kind: {f['kind']},\n    on: InstanceID(model: "
        f"'{terminal_safe(f['on']['model'])}', ordinal: {f['on']['ordinal']}),\n    left_pk: "
        f"{f['left_pk']},\n    reason: {terminal_safe(f['reason'])}\n)"
    )
