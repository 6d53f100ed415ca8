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
