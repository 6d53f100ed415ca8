"""The local runner's worker process: Beam's SDK harness, ended quietly by Ctrl-C.

In a terminal, Ctrl-C reaches every process of the foreground group: the launcher and
its ``multi_processing`` workers. The launcher says what became of the import in one line
(``relocate.cli``); a worker that printed its own traceback would bury that line. A worker
ends at once instead: its open transaction rolls back with its connection, as when it is
killed, and the rows it committed are the import's, resumable like any others.
"""

from __future__ import annotations

import os
import runpy
import signal
import sys

#: The exit status of a process ended by SIGINT, as a shell reports it.
INTERRUPTED = 128 + signal.SIGINT


def _end_quietly(signum: int, frame: object) -> None:
    del signum, frame
    os._exit(INTERRUPTED)  # no traceback, no cleanup that could print


def command() -> str:
    """The command line that starts one worker (Beam runs it through a shell)."""
    return f"{sys.executable} -m relocate.beam.worker"


if __name__ == "__main__":
    signal.signal(signal.SIGINT, _end_quietly)
    runpy.run_module("apache_beam.runners.worker.sdk_worker_main", run_name="__main__")
