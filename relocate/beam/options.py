"""Beam pipeline options whose views are built once."""

from __future__ import annotations

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
