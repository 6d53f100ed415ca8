"""Beam pipeline options whose views are built once."""

from __future__ import annotations

import os
from typing import Any, TypeVar

from apache_beam.options.pipeline_options import PipelineOptions

View = TypeVar("View", bound=PipelineOptions)

_VIEWS = "_relocate_views"


class ImportOptions(PipelineOptions):
    """``PipelineOptions`` that build each view once.

    Beam builds a fresh view (a new argparse parser over every option it knows, then a
    parse of the flags) two or three times for every transform it applies, to read the
    type-check flag: a sixth of a small import's CPU (py-spy, 25 imports). A view keeps
    its values in the options' shared ``_all_options``, so handing out the same view again
    is what Beam's own ``view_as`` would return, without the parse.
    """

    def view_as(self, cls: type[View]) -> View:
        views = self.__dict__.setdefault(_VIEWS, {})
        view = views.get(cls)
        if view is None:
            view = views[cls] = super().view_as(cls)
        return view

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())
        state.pop(_VIEWS, None)
        return state


#: Exports from this size up run on every core when the local runner is left to its
#: defaults; below it, starting a worker process per core costs more than it saves
#: (about 2 s; a 300k-row export is 72 MB).
PARALLEL_FROM_BYTES = 32 << 20
#: The most worker processes relocate starts on its own.
MAX_LOCAL_WORKERS = 8
_LOCAL_RUNNERS = ("FnApiRunner", "DirectRunner", "BundleBasedDirectRunner")


def beam_option(args: list[str], name: str) -> str | None:
    """The value of ``--name=V`` or ``--name V`` in ``args`` (the last one), or None."""
    value = None
    for i, arg in enumerate(args):
        if arg.startswith(f"--{name}="):
            value = arg.split("=", 1)[1]
        elif arg == f"--{name}" and i + 1 < len(args):
            value = args[i + 1]
    return value


def _on_local_runner(args: list[str]) -> bool:
    """Whether ``args`` run the import on Beam's local runner (the default)."""
    runner = beam_option(args, "runner") or "FnApiRunner"
    return runner.rsplit(".", 1)[-1] in _LOCAL_RUNNERS


def local_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def parallel_local_run(
    args: list[str], source_bytes: int | None, cores: int | None = None
) -> tuple[list[str], int]:
    """The runner options to run with, and how many readers read the export.

    On the local runner, left to its defaults, an export of at least
    ``PARALLEL_FROM_BYTES`` runs in one worker process per core (``multi_processing``),
    and as many readers share the work before the first write (``ReadExport``). Options
    that name a running mode or a number of workers are kept as given; other runners
    (Dataflow) get one reader.

    Args:
        args: the Beam options of the import (``--runner`` among them).
        source_bytes: the export's size; None when it is not known (not a local file).
        cores: the cores to use (default: those this process may run on).
    """
    if not _on_local_runner(args):
        return list(args), 1
    mode = beam_option(args, "direct_running_mode")
    workers = beam_option(args, "direct_num_workers")
    if mode is not None or workers is not None:
        if mode == "multi_processing" and workers is not None and workers.isdigit():
            return list(args), max(1, int(workers))
        return list(args), 1
    cores = min(cores or local_cores(), MAX_LOCAL_WORKERS)
    if cores < 2 or source_bytes is None or source_bytes < PARALLEL_FROM_BYTES:
        return list(args), 1
    extra = ["--direct_running_mode=multi_processing", f"--direct_num_workers={cores}"]
    return [*args, *extra], cores


def quiet_worker_runner(args: list[str]) -> tuple[Any | None, list[str]]:
    """For a local ``multi_processing`` run: a runner whose worker processes end quietly on
    Ctrl-C (``relocate.beam.worker``), and the options without the running mode (which
    would make Beam start its own worker command). Other runs: None and ``args`` as given.
    """
    if not _on_local_runner(args) or beam_option(args, "direct_running_mode") != (
        "multi_processing"
    ):
        return None, list(args)
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner
    from apache_beam.transforms.environments import SubprocessSDKEnvironment

    from relocate.beam.worker import command

    kept: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in ("--direct_running_mode", "--runner"):
            skip = True  # and its value
        elif not arg.startswith(("--direct_running_mode=", "--runner=")):
            kept.append(arg)
    environment = SubprocessSDKEnvironment.from_command_string(command_string=command())
    return FnApiRunner(default_environment=environment), kept
