"""``ReadExport``: streams a Sentry export (plain or encrypted) into rows."""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from relocate.io.export_reader import BadRow, ExportFormatError, Row, iter_export
from relocate.logic.admission import has_natural_user_refs, username_pk
from relocate.logic.settings import ImportSettings

log = logging.getLogger("relocate.read")

BAD = "bad"
USERNAMES = "usernames"
PROGRESS_EVERY = 100_000
#: Rows between two looks at the clock (to report progress every ``POST_EVERY`` seconds).
CLOCK_EVERY = 1_000
#: Rows of one model carried by one Beam element. Beam's cost is per element (~10 us
#: per transform), so a batch pays it once for many rows (docs/beam-notes.md).
ROWS_PER_ELEMENT = 500


def read_shard(model: str, ordinal: int, shards: int) -> int:
    """Which of ``shards`` readers emits the row: whole elements (runs of
    ``ROWS_PER_ELEMENT`` ordinals of one model) go round the readers, each model starting
    at its own reader, so the batches are those of a single reader."""
    return (zlib.crc32(model.encode()) + (ordinal - 1) // ROWS_PER_ELEMENT) % shards


def rows_of(batches: beam.PCollection, model: str, label: str) -> beam.PCollection:
    """The rows (tuples) of one model, one per element, from a PCollection of batches."""
    return batches | label >> beam.FlatMap(lambda b: b[1] if b[0] == model else ())


def open_source(path: str) -> Any:
    """Opens a local path, a ``gs://`` URI (Beam FileSystems) or ``-`` (stdin)."""
    if path == "-":
        return sys.stdin.buffer
    return FileSystems.open(path, compression_type="uncompressed")


class UsernamePairs:
    """The ``(username, pk)`` pairs of an export's users, for 23.7 exports only.

    Exports of Sentry 23.7 name users by natural key (a username), and such a row needs
    every user's pair (``first_pk_of_username``); no later export does. Whether the export
    is one is known only once it is read, and a side input of every pair held the pairs
    of every export in the runner's memory (most of its growth from 1M to 10M rows). So
    the reader that sees every row spills the pairs to a temporary file as it goes, and
    emits them once the file is read only when a row named a user by natural key.

    Args:
        user_fields: model -> its fields that are foreign keys to ``sentry.user``.
    """

    def __init__(self, user_fields: dict[str, tuple[str, ...]]) -> None:
        self._user_fields = user_fields
        # Open for the whole read: pairs() closes it (an abandoned read: the collector).
        self._spill = tempfile.TemporaryFile(mode="w+", encoding="utf-8")  # noqa: SIM115
        #: Whether a row read so far names a user by natural key.
        self.needed = False

    def see(self, row: Row) -> None:
        """Takes one row of the export, in file order."""
        if row.model == "sentry.user":
            pair = username_pk(row)
            if pair is not None:
                self._spill.write(json.dumps(pair) + "\n")
        elif not self.needed:
            fields = self._user_fields.get(row.model)
            if fields and has_natural_user_refs(row.fields, fields):
                self.needed = True

    def pairs(self) -> Iterator[tuple[str, int]]:
        """Every pair seen, in file order, when a row needed them; else none. Closes."""
        try:
            if self.needed:
                self._spill.seek(0)
                for line in self._spill:
                    username, pk = json.loads(line)
                    yield username, pk
        finally:
            self._spill.close()


@dataclass(eq=False)
class _ReadExportFn(beam.DoFn):
    """Reads one export as one of ``_shards`` readers; emits batches
    ``(model, [Row tuple, ...])`` of rows of one model on the main output, and ``BadRow``
    on ``bad``.

    Every reader parses the whole file (the rows' ordinals and the file's validity need
    it) and emits its own share of the batches (``read_shard``): admitting, converting
    and staging them, most of the work before the first write, then run in as many
    processes as there are readers. Reader 0 also emits the bad rows and the users'
    ``(username, pk)`` pairs when a row needs them (``UsernamePairs``, on ``usernames``),
    and reports progress.
    """

    _path: str
    _decryption: Any | None
    _known: frozenset[str]
    #: Where to report progress (``relocate.db.progress``); None: nowhere.
    _settings: ImportSettings | None = None
    _shards: int = 1
    #: model -> its foreign-key fields to ``sentry.user`` (``UsernamePairs``).
    _user_fields: dict[str, tuple[str, ...]] | None = None

    def __post_init__(self) -> None:
        super().__init__()

    def setup(self) -> None:
        self._rows = Metrics.counter("relocate", "rows_read")

    def process(self, shard: int) -> Iterator[Any]:
        from relocate.io.crypto import input_kind_error, open_plaintext, read_head

        path = self._path
        source = open_source(path)
        self._progress = _ReadProgress(self._settings if shard == 0 else None, source)
        self._progress.export_size(path)
        try:
            head, stream = read_head(source)
            problem = input_kind_error(head, decrypting=self._decryption is not None)
            if problem is not None:
                raise ExportFormatError(problem)
            if self._decryption is not None:
                with open_plaintext(stream, self._decryption) as plain:
                    yield from self._rows_of(plain, shard)
            else:
                yield from self._rows_of(stream, shard)
            self._progress.update(0, final=True)
        finally:
            if path != "-":
                source.close()

    def _rows_of(self, stream: Any, shard: int) -> Iterator[Any]:
        count = 0
        shards = self._shards
        pending: dict[str, list[tuple]] = {}  # model -> rows not yet emitted
        usernames = UsernamePairs(self._user_fields or {}) if shard == 0 else None
        for item in iter_export(stream):
            count += 1
            if count % CLOCK_EVERY == 0:
                self._progress.update(CLOCK_EVERY)
            if count % PROGRESS_EVERY == 0:
                log.debug("read %d rows", count)
            if isinstance(item, BadRow):
                if shard == 0:
                    yield beam.pvalue.TaggedOutput(BAD, item)
                continue
            if usernames is not None:
                usernames.see(item)
            if shards > 1 and read_shard(item.model, item.ordinal, shards) != shard:
                continue
            if item.model not in self._known and item.model != "sentry.actor":
                # Only skipped and reported: its fields need not travel (nor take memory).
                item = item._replace(fields={})
            batch = pending.setdefault(item.model, [])
            batch.append(tuple(item))  # a plain tuple crosses Beam's coders fastest
            if len(batch) >= ROWS_PER_ELEMENT:
                yield self._emit(pending.pop(item.model))
        for batch in pending.values():
            yield self._emit(batch)
        if usernames is not None:
            for pair in usernames.pairs():
                yield beam.pvalue.TaggedOutput(USERNAMES, pair)
        self._progress.update(count % CLOCK_EVERY)
        log.debug("read %d rows in all", count)

    def _emit(self, batch: list[tuple]) -> tuple[str, list[tuple]]:
        model = batch[0][0]
        self._rows.inc(len(batch))
        Metrics.counter("relocate.read", model if model in self._known else "<other>").inc(
            len(batch)
        )
        return (model, batch)


class _ReadProgress:
    """Rows read and the source's position, reported every few seconds (kind ``read``)."""

    def __init__(self, settings: ImportSettings | None, source: Any) -> None:
        from relocate.db.progress import Poster

        self._source = source
        self._poster = Poster(settings, "read") if settings is not None else None
        self._position = 0

    def export_size(self, path: str) -> None:
        """Records the export's size (kind ``export``), told here rather than by the
        launcher: the worker reads the file anyway, with the credentials it needs (a
        launcher asking Cloud Storage could wait minutes where it cannot reach it)."""
        if self._poster is None:
            return
        size = None
        try:
            size = os.fstat(self._source.fileno()).st_size
        except (AttributeError, OSError, ValueError):
            try:
                size = FileSystems.match([path])[0].metadata_list[0].size_in_bytes
            except Exception:  # noqa: BLE001 - a size is a nicety, never a failure
                size = None
        if size is not None:
            from relocate.db.progress import post

            post(self._poster.settings, "export", {0: (0, int(size))})

    def update(self, rows: int, final: bool = False) -> None:
        if self._poster is None:
            return
        position = self._tell()
        self._poster.add(0, rows, position - self._position)
        self._position = position
        if final:
            self._poster.flush()

    def _tell(self) -> int:
        """Where the source is (bytes consumed); a stream without a position: 0."""
        try:
            return int(self._source.tell())
        except (AttributeError, OSError, TypeError, ValueError):
            return self._position


@dataclass(eq=False)
class ReadExport(beam.PTransform):
    """Reads the export at ``path`` with ``shards`` readers (``_ReadExportFn``).

    Returns a tagged result: the main output holds batches ``(model, [Row tuple, ...])``
    of at most ``ROWS_PER_ELEMENT`` rows of one model, ``bad`` holds ``BadRow``s,
    ``usernames`` the users' ``(username, pk)`` pairs when a row of a model in
    ``user_fields`` names a user by natural key (``UsernamePairs``), else nothing.
    """

    path: str
    decryption: Any | None
    known_models: frozenset[str]
    settings: ImportSettings | None = None
    shards: int = 1
    user_fields: dict[str, tuple[str, ...]] | None = None

    def __post_init__(self) -> None:
        super().__init__()

    def expand(self, pbegin: beam.pvalue.PBegin) -> Any:
        start = pbegin | "Start" >> beam.Impulse()
        if self.shards > 1:
            # Through a shuffle, so that a runner hands the readers to different workers.
            readers = (
                start
                | "Readers" >> beam.FlatMap(lambda _, n: range(n), self.shards)
                | "Spread" >> beam.Reshuffle()
            )
        else:
            readers = start | "Reader" >> beam.Map(lambda _: 0)
        return readers | "Parse" >> beam.ParDo(
            _ReadExportFn(
                self.path,
                self.decryption,
                self.known_models,
                self.settings,
                self.shards,
                self.user_fields,
            )
        ).with_outputs(BAD, USERNAMES, main="rows")
