"""``AdmitRows`` and ``ConvertRows``: scope, filters, and column conversion.

Thin DoFns over ``relocate.logic.admission`` and ``relocate.logic.convert``. Rows travel in batches
``(model, [row tuple, ...])`` of one model (``relocate.beam.read``); each batch
comes out as one batch of what passed. Skipped rows go to the ``skipped`` output as
report entries; rows that fail validation (in Admit: a value of the wrong shape) go to
``findings``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import apache_beam as beam

from relocate.beam.read import rows_of
from relocate.db.handler import Finding
from relocate.io.export_reader import BadRow, Row
from relocate.logic.admission import (
    Filters,
    first_pk_of_username,
    member_user_pk,
    org_pks_with_slugs,
    resolve_legacy_owner,
    resolve_natural_user_refs,
    skip_reason,
    user_email_if_selected,
    user_fk_fields,
)
from relocate.logic.convert import (
    RowInvalid,
    TableLayout,
    convert_row,
    missing_required,
    pack_converted,
)
from relocate.logic.settings import ImportSettings
from relocate.schemas.registry import Registry

SKIPPED = "skipped"
FINDINGS = "findings"


def report_entry(row: Row, action: str, reason: str) -> tuple:
    """A report row: (model, ordinal, source pk, action, reason)."""
    return (row.model, row.ordinal, row.pk, action, reason)


def bad_row_finding(bad: BadRow) -> Finding:
    return Finding(
        "DeserializationFailed",
        bad.model,
        bad.ordinal,
        bad.pk if isinstance(bad.pk, int) else None,
        f"element {bad.position} of the export: {bad.reason}",
    )


@dataclass(eq=False)
class ResolveFilters(beam.PTransform):
    """Computes the import's allow-lists from the parsed rows, whatever their order.

    Returns a PCollection holding one ``Filters`` (for use with ``AsSingleton``). Only for
    an import with a filter: without one, admission has no side input to wait for.
    """

    settings: ImportSettings

    def __post_init__(self) -> None:
        super().__init__()

    def expand(self, batches: beam.PCollection) -> beam.PCollection:
        settings = self.settings
        pipeline = batches.pipeline
        users = rows_of(batches, "sentry.user", "Users")
        if settings.filter_org_slugs is not None:
            slugs = settings.filter_org_slugs
            org_pks = (
                rows_of(batches, "sentry.organization", "Orgs")
                | "OrgPks" >> beam.combiners.ToList()
                | "ListedOrgs"
                >> beam.Map(lambda orgs: org_pks_with_slugs(map(Row._make, orgs), slugs))
            )
            user_pks = (
                rows_of(batches, "sentry.organizationmember", "Members")
                | "MemberUsers"
                >> beam.FlatMap(
                    lambda m, pks: (
                        [u] if (u := member_user_pk(Row._make(m), pks)) is not None else []
                    ),
                    pks=beam.pvalue.AsSingleton(org_pks),
                )
                | "UserPks" >> beam.combiners.ToList()
                | "AsUserFilter"
                >> beam.Map(lambda pks: Filters(user_pks=frozenset(pks), org_slugs=slugs))
            )
        else:
            user_pks = pipeline | "UsernameFilter" >> beam.Create(
                [Filters(usernames=settings.filter_usernames)]
            )
        return (
            users
            | "Emails"
            >> beam.FlatMap(
                lambda u, f: (
                    [e] if (e := user_email_if_selected(Row._make(u), f)) is not None else []
                ),
                f=beam.pvalue.AsSingleton(user_pks),
            )
            | "EmailList" >> beam.combiners.ToList()
            | "WithEmails"
            >> beam.Map(
                lambda emails, f: Filters(f.usernames, f.user_pks, f.org_slugs, frozenset(emails)),
                f=beam.pvalue.AsSingleton(user_pks),
            )
        )


@dataclass(eq=False)
class _AdmitFn(beam.DoFn):
    _registry: Registry
    _settings: ImportSettings
    _removed: frozenset[str]

    def __post_init__(self) -> None:
        super().__init__()

    def start_bundle(self) -> None:
        self._usernames: dict[str, int] | None = None  # built once per bundle, if needed

    def process(
        self,
        batch: tuple[str, list[tuple]],
        filters: Filters | None = None,
        actors: dict | None = None,
        usernames: Iterable[tuple[str, int]] | None = None,
    ) -> Iterator[Any]:
        model, elements = batch
        filters = filters if filters is not None else Filters()
        info = self._registry.get(model) if usernames is not None else None
        user_fields = user_fk_fields(info) if info is not None else ()
        if user_fields and self._usernames is None:
            self._usernames = first_pk_of_username(usernames or ())
        admitted = []
        for element in elements:
            row = Row._make(element)
            try:
                reason = skip_reason(row, self._registry, self._settings, filters, self._removed)
                if reason is None and actors is not None:
                    row = resolve_legacy_owner(row, actors)
                if reason is None and user_fields:
                    row = resolve_natural_user_refs(row, user_fields, self._usernames or {})
            except RowInvalid as exc:
                yield beam.pvalue.TaggedOutput(
                    FINDINGS, Finding("ValidationError", row.model, row.ordinal, row.pk, str(exc))
                )
                continue
            if reason is None:
                admitted.append(tuple(row))
            else:
                yield beam.pvalue.TaggedOutput(SKIPPED, report_entry(row, "skipped", reason))
        if admitted:
            yield (model, admitted)


@dataclass(eq=False)
class AdmitRows(beam.PTransform):
    """Splits batches of rows into batches of admitted rows (main), report entries
    (``skipped``) and ValidationError findings (``findings``).

    With ``actors`` (a PCollection of ``(actor pk, (user pk, team pk))``), the legacy
    ``owner`` of admitted rows is resolved (``relocate.logic.admission``); with
    ``usernames`` (``(username, user pk)`` of the export's users), users named by natural
    key (23.7 exports) are.
    """

    registry: Registry
    settings: ImportSettings
    removed_models: frozenset[str]
    filters: beam.PCollection | None
    actors: beam.PCollection | None = None
    usernames: beam.PCollection | None = None

    def __post_init__(self) -> None:
        super().__init__()

    def expand(self, rows: beam.PCollection) -> Any:
        side = {}
        if self.filters is not None:
            side["filters"] = beam.pvalue.AsSingleton(self.filters)
        if self.actors is not None:
            side["actors"] = beam.pvalue.AsDict(self.actors)
        if self.usernames is not None:
            side["usernames"] = beam.pvalue.AsIter(self.usernames)
        return rows | beam.ParDo(
            _AdmitFn(self.registry, self.settings, self.removed_models), **side
        ).with_outputs(SKIPPED, FINDINGS, main="admitted")


@dataclass(eq=False)
class _ConvertFn(beam.DoFn):
    _layouts: dict[str, TableLayout | None]
    _settings: ImportSettings
    _tables: dict[str, str]  # model -> Sentry's table name, to name a missing table
    #: model -> its stage: rows validated are reported per stage (None: not reported).
    _stages: dict[str, int] | None = None

    def __post_init__(self) -> None:
        super().__init__()

    def setup(self) -> None:
        from relocate.db.progress import Poster
        from relocate.logic.rules import build_handlers

        self._handlers = build_handlers()
        self._progress = Poster(self._settings, "validated") if self._stages else None

    def finish_bundle(self) -> None:
        if self._progress is not None:
            self._progress.flush()

    def process(self, batch: tuple[str, list[tuple]]) -> Iterator[Any]:
        model, elements = batch
        layout = self._layouts.get(model)
        if layout is None:
            reason = (
                f"the target database has no table `{self._tables.get(model, '?')}` for this model"
            )
            for element in elements:
                yield beam.pvalue.TaggedOutput(
                    SKIPPED, report_entry(Row._make(element), "skipped", reason)
                )
            return
        handler = self._handlers.get(model)
        converted_rows = []
        for element in elements:
            row = Row._make(element)
            try:
                converted = convert_row(row, layout)
                if handler is not None:
                    handler.validate(converted, self._settings)
                missing = missing_required(layout, converted.values)
                if missing:
                    raise RowInvalid(f"required field(s) missing: {', '.join(sorted(missing))}")
            except RowInvalid as exc:
                yield beam.pvalue.TaggedOutput(
                    FINDINGS,
                    Finding("ValidationError", row.model, row.ordinal, row.pk, str(exc)),
                )
                continue
            converted_rows.append(converted)
        if converted_rows:
            if self._progress is not None and self._stages:
                self._progress.add(self._stages.get(model, 0), len(converted_rows))
            yield pack_converted(model, converted_rows)


@dataclass(eq=False)
class ConvertRows(beam.PTransform):
    """Converts batches of admitted rows to packed batches of target columns
    (``relocate.logic.convert.PackedBatch``); ``findings`` holds validation errors."""

    layouts: dict[str, TableLayout | None]
    settings: ImportSettings
    tables: dict[str, str]
    #: model -> stage, to report rows validated per stage (``relocate.db.progress``).
    stages: dict[str, int] | None = None

    def __post_init__(self) -> None:
        super().__init__()

    def expand(self, rows: beam.PCollection) -> Any:
        convert = _ConvertFn(self.layouts, self.settings, self.tables, self.stages)
        return rows | beam.ParDo(convert).with_outputs(SKIPPED, FINDINGS, main="converted")
