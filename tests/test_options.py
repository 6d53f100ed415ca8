"""The import's pipeline options hand out each view once, with Beam's values."""

from __future__ import annotations

import pickle

from apache_beam.options.pipeline_options import (
    GoogleCloudOptions,
    PipelineOptions,
    StandardOptions,
    TypeOptions,
)

from relocate.beam.options import ImportOptions

FLAGS = ["--runner=FnApiRunner", "--project=p", "--no_pipeline_type_check"]


def test_a_view_is_built_once_and_reads_the_flags() -> None:
    options = ImportOptions(FLAGS)
    view = options.view_as(TypeOptions)
    assert options.view_as(TypeOptions) is view
    assert view.pipeline_type_check is False
    assert options.view_as(StandardOptions).runner == "FnApiRunner"
    assert options.view_as(GoogleCloudOptions).project == "p"


def test_views_share_their_values_as_in_beam() -> None:
    options = ImportOptions(FLAGS)
    options.view_as(GoogleCloudOptions).region = "europe-west1"
    assert options.view_as(GoogleCloudOptions).region == "europe-west1"
    assert options.get_all_options()["region"] == "europe-west1"
    beam_options = PipelineOptions(FLAGS)
    beam_options.view_as(GoogleCloudOptions).region = "europe-west1"
    assert beam_options.get_all_options() == options.get_all_options()


def test_pickled_options_leave_the_views_behind() -> None:
    options = ImportOptions(FLAGS)
    options.view_as(TypeOptions)
    restored = pickle.loads(pickle.dumps(options))
    assert "_relocate_views" not in restored.__dict__
    assert restored.get_all_options() == options.get_all_options()
    assert restored.view_as(TypeOptions).pipeline_type_check is False


# -- the local runner on every core for large exports -------------------------------------


def test_a_large_export_runs_on_every_core_of_the_local_runner():
    from relocate.beam.options import PARALLEL_FROM_BYTES, parallel_local_run

    args, readers = parallel_local_run([], PARALLEL_FROM_BYTES, cores=2)
    assert args == ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]
    assert readers == 2
    args, readers = parallel_local_run(["--runner=FnApiRunner"], 10 * PARALLEL_FROM_BYTES, 16)
    assert args[-1] == "--direct_num_workers=8" and readers == 8  # at most MAX_LOCAL_WORKERS


def test_a_small_export_a_single_core_or_an_unknown_size_runs_in_process():
    from relocate.beam.options import PARALLEL_FROM_BYTES, parallel_local_run

    assert parallel_local_run([], PARALLEL_FROM_BYTES - 1, cores=4) == ([], 1)
    assert parallel_local_run([], PARALLEL_FROM_BYTES, cores=1) == ([], 1)
    assert parallel_local_run([], None, cores=4) == ([], 1)


def test_runner_options_given_are_kept_and_set_the_readers():
    from relocate.beam.options import PARALLEL_FROM_BYTES, parallel_local_run

    big = 4 * PARALLEL_FROM_BYTES
    given = [
        "--runner=DirectRunner",
        "--direct_running_mode=multi_processing",
        "--direct_num_workers",
        "3",
    ]
    assert parallel_local_run(given, big, cores=2) == (given, 3)
    threads = ["--direct_running_mode=multi_threading", "--direct_num_workers=2"]
    assert parallel_local_run(threads, big, cores=2) == (threads, 1)
    in_memory = ["--direct_running_mode=in_memory"]
    assert parallel_local_run(in_memory, big, cores=2) == (in_memory, 1)
    dataflow = ["--runner=DataflowRunner", "--project=p"]
    assert parallel_local_run(dataflow, big, cores=2) == (dataflow, 1)


def test_multi_processing_workers_are_relocates_quiet_worker():
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    from relocate.beam.options import quiet_worker_runner

    given = [
        "--runner=DirectRunner",
        "--direct_running_mode",
        "multi_processing",
        "--direct_num_workers=2",
        "--max-db-connections",
        "2",
    ]
    runner, args = quiet_worker_runner(given)
    assert isinstance(runner, FnApiRunner)
    assert args == ["--direct_num_workers=2", "--max-db-connections", "2"]
    command = runner._default_environment.command_string
    assert command.endswith(" -m relocate.beam.worker")
    assert quiet_worker_runner(["--direct_running_mode=in_memory"]) == (
        None,
        ["--direct_running_mode=in_memory"],
    )
    spaced = ["--runner", "FnApiRunner", "--direct_running_mode=multi_processing", "--x=1"]
    runner, args = quiet_worker_runner(spaced)
    assert isinstance(runner, FnApiRunner) and args == ["--x=1"]
    dataflow = ["--runner=DataflowRunner", "--direct_running_mode=multi_processing"]
    assert quiet_worker_runner(dataflow) == (None, dataflow)


def test_an_import_process_freezes_what_it_loaded_and_collects_young_objects_rarely():
    """The console script and the worker processes tune the cycle collector at start."""
    import subprocess
    import sys

    probe = (
        "import gc, sys\n"
        "from relocate.cli import main\n"
        "main.main = lambda: print(gc.get_threshold(), gc.get_freeze_count() > 10000) or 0\n"
        "sys.exit(main.console())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split("\n")[0] == "(50000, 20, 10) True"
