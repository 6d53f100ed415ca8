"""The local runner's worker process: Beam's SDK harness, ended quietly by Ctrl-C.

In a terminal, Ctrl-C reaches every process of the foreground group: the launcher and
its ``multi_processing`` workers. The launcher says what became of the import in one line
(``relocate.cli``); a worker that printed its own traceback would bury that line. A worker
ends at once instead: its open transaction rolls back with its connection, as when it is
killed, and the rows it committed are the import's, resumable like any others.
"""

from __future__ import annotations

import gc
import os
import runpy
import signal
import sys

#: The exit status of a process ended by SIGINT, as a shell reports it.
INTERRUPTED = 128 + signal.SIGINT


def _end_quietly(signum: int, frame: object) -> None:
    del signum, frame
    os._exit(INTERRUPTED)  # no traceback, no cleanup that could print


def tune_garbage_collector() -> None:
    """Makes Python's cycle collector cheap for an import's process.

    With the default thresholds, a worker of a 1M-row import spent 4.3 s of its ~30 s of
    CPU collecting (measured with ``gc.callbacks``), 3.4 s of it in 31 full collections
    that walked every object of Beam, psycopg and relocate each time. Frozen once the
    modules are loaded, those objects are left out; and a young collection every 50,000
    allocations instead of every 700 still frees the few cycles a batch makes (rows and
    batches are freed by reference counting). Afterwards: 0.1 s per worker.
    """
    gc.freeze()
    gc.set_threshold(50_000, 20, 10)


def command() -> str:
    """The command line that starts one worker (Beam runs it through a shell)."""
    return f"{sys.executable} -m relocate.beam.worker"


if __name__ == "__main__":
    signal.signal(signal.SIGINT, _end_quietly)
    import apache_beam.runners.worker.sdk_worker  # noqa: F401  (the harness: loaded, then frozen)

    import relocate.beam.pipeline  # noqa: F401

    tune_garbage_collector()
    runpy.run_module("apache_beam.runners.worker.sdk_worker_main", run_name="__main__")
