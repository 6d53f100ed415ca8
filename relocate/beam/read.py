"""``ReadExport``: streams a Sentry export (plain or encrypted) into rows."""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from relocate.io.export_reader import BadRow, ExportFormatError, Row, iter_export_with_starts
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


#: What a row read only for the ordinals after it costs (parsed, never admitted, converted
#: or staged), as a share of what a row the reader emits costs. Measured at 1M rows: a
#: row read for its ordinal 4.4 us of CPU, a row emitted 4.9 us to read and about 13 us
#: more to admit, convert and stage.
PREFIX_COST = 0.25
#: Characters of JSON per byte of an encrypted export (the token is base64: 3 per 4).
ENCRYPTED_TEXT_PER_BYTE = 0.75


def segment_starts(text_size: int, shards: int, prefix_cost: float = PREFIX_COST) -> list[int]:
    """Where each of ``shards`` readers' segments of the export starts (characters).

    Reader ``k`` parses the export from its start (a row's ordinal counts the rows of its
    model before it) and emits the rows whose element starts in its segment: it reads
    ``starts[k]`` characters for the ordinals only, then its own segment, then stops.
    Segments shrink along the file so that every reader does the same work:
    ``prefix_cost * start + length`` is equal for all (the last one ends at the end).

    Args:
        text_size: the export's size in characters (an estimate: only the balance between
            the readers depends on it, never which reader emits a row).
        shards: the readers.
        prefix_cost: see ``PREFIX_COST``.
    """
    if shards <= 1 or text_size <= 0:
        return [0] * max(shards, 1)
    keep = 1.0 - prefix_cost
    # Segment k is T * keep**k long; together they make the whole text.
    share = prefix_cost / (1.0 - keep**shards) if prefix_cost > 0 else 1.0 / shards
    starts, at = [], 0.0
    for k in range(shards):
        starts.append(round(at * text_size))
        at += share * keep**k
    return starts


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


class Segment:
    """Which rows the reader of a segment emits (``segment_starts``).

    A segment's edges are moved on to the next row that opens a run of
    ``ROWS_PER_ELEMENT`` ordinals of its model (ordinal 1, 501, ...). In an export whose
    models' rows lie together, as Sentry writes them, a run is then never split between
    two readers: a run is one batch, as one reader batches a model's rows, and a model of
    at most ``ROWS_PER_ELEMENT`` rows is written by one batch whichever segment its rows
    start in (two batches of one model written side by side could both insert a key the
    rules resolve: of two roles of one name the first is Inserted, the second Existing).
    Every reader finds the same edges: each reads every row before its own.

    Call ``takes`` for each row of the export, in file order, until ``finished``.

    Args:
        begin: where the segment starts (characters); 0: from the first row.
        end: where the next segment starts; None: at the end of the export.
    """

    def __init__(self, begin: int, end: int | None) -> None:
        self._begin = begin
        self._end = end
        self._inside = begin == 0
        #: Set when it is the first row after the segment: the reader stops.
        self.finished = False

    def takes(self, start: int, ordinal: int) -> bool:
        """Whether the reader emits the row whose element starts at ``start``."""
        opens_run = (ordinal - 1) % ROWS_PER_ELEMENT == 0
        if not self._inside:
            self._inside = start >= self._begin and opens_run
            if not self._inside:
                return False
        end = self._end
        if end is not None and start >= end and opens_run:
            self.finished = True
            return False
        return True


@dataclass(eq=False)
class _ReadExportFn(beam.DoFn):
    """Reads one export as one of ``_shards`` readers; emits batches
    ``(model, [Row tuple, ...])`` of rows of one model on the main output, and ``BadRow``
    on ``bad``.

    Each reader emits the rows of its own segment of the file (``segment_starts``), so
    that admitting, converting and staging them, most of the work before the first write,
    run in as many processes as there are readers. A row's ordinal counts the rows of its
    model before it, so a reader parses the file from its start, emits its segment and
    stops; only the last reads to the end (it finds whether the whole file is valid) and
    so sees every row: it emits the users' ``(username, pk)`` pairs when a row needs them
    (``UsernamePairs``, on ``usernames``). Every reader reports the progress of its
    segment; the first also the export's size.
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
        if path == "-" and shard > 0:
            return  # standard input can be read once: reader 0 reads it all
        source = open_source(path)
        self._progress = _ReadProgress(self._settings, source)
        size = self._progress.export_size(path, report=shard == 0)
        text_size = None
        if size and path != "-":
            text_size = int(size * ENCRYPTED_TEXT_PER_BYTE) if self._decryption else size
        segment = self._segment(shard, text_size)
        try:
            if segment is None:
                return
            head, stream = read_head(source)
            problem = input_kind_error(head, decrypting=self._decryption is not None)
            if problem is not None:
                raise ExportFormatError(problem)
            if self._decryption is not None:
                with open_plaintext(stream, self._decryption) as plain:
                    yield from self._rows_of(plain, *segment)
            else:
                yield from self._rows_of(stream, *segment)
            self._progress.update(0, final=True)
        finally:
            if path != "-":
                source.close()

    def _segment(self, shard: int, text_size: int | None) -> tuple[int, int | None] | None:
        """Reader ``shard``'s segment: (first character, the character it stops at; None:
        the end). None: no rows (the size of the export is not known, or it is standard
        input: reader 0 reads it all)."""
        shards = self._shards
        if shards <= 1:
            return 0, None
        if text_size is None:
            return (0, None) if shard == 0 else None
        starts = segment_starts(text_size, shards)
        return starts[shard], starts[shard + 1] if shard + 1 < shards else None

    def _rows_of(self, stream: Any, begin: int, end: int | None) -> Iterator[Any]:
        count = 0
        pending: dict[str, list[tuple]] = {}  # model -> rows not yet emitted
        # The reader that reads to the end sees every user.
        usernames = UsernamePairs(self._user_fields or {}) if end is None else None
        progress = self._progress
        segment = Segment(begin, end)
        unposted = 0  # rows emitted since the last progress update
        if begin == 0:
            progress.begin(at_start=True)
        for start, item in iter_export_with_starts(stream):
            if usernames is not None and type(item) is Row:
                usernames.see(item)
            if not segment.takes(start, item.ordinal):
                if segment.finished:
                    break  # the next reader reports from here
                continue  # read for the ordinals of the rows after it
            if count == 0 and begin > 0:
                progress.begin(at_start=False)  # the reader before reported up to here
            count += 1
            unposted += 1
            if unposted == CLOCK_EVERY:
                progress.update(unposted)
                unposted = 0
            if count % PROGRESS_EVERY == 0:
                log.debug("read %d rows", count)
            if type(item) is BadRow:
                yield beam.pvalue.TaggedOutput(BAD, item)
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
        progress.update(unposted)
        log.debug("read %d rows in all", count)

    def _emit(self, batch: list[tuple]) -> tuple[str, list[tuple]]:
        model = batch[0][0]
        self._rows.inc(len(batch))
        Metrics.counter("relocate.read", model if model in self._known else "<other>").inc(
            len(batch)
        )
        return (model, batch)


class _ReadProgress:
    """Rows read and the source's position, reported every few seconds (kind ``read``).

    A reader reports from where its segment starts (``begin``): the bytes before it are
    the previous reader's, which reports up to the same element (the readers read the
    source alike), so that the readers' bytes add up to the export's size.
    """

    def __init__(self, settings: ImportSettings | None, source: Any) -> None:
        from relocate.db.progress import Poster

        self._source = source
        self._poster = Poster(settings, "read") if settings is not None else None
        self._position = 0
        self._active = False

    def export_size(self, path: str, report: bool) -> int | None:
        """The export's size in bytes (None: not known); ``report``: also records it
        (kind ``export``), told here rather than by the launcher: the worker reads the
        file anyway, with the credentials it needs (a launcher asking Cloud Storage could
        wait minutes where it cannot reach it)."""
        size = None
        try:
            size = os.fstat(self._source.fileno()).st_size
        except (AttributeError, OSError, ValueError):
            try:
                size = FileSystems.match([path])[0].metadata_list[0].size_in_bytes
            except Exception:  # noqa: BLE001 - a size is a nicety, never a failure
                size = None
        if size is not None and report and self._poster is not None:
            from relocate.db.progress import post

            post(self._poster.settings, "export", {0: (0, int(size))})
        return None if size is None else int(size)

    def begin(self, at_start: bool) -> None:
        """Starts reporting: from the start of the source, or from where it is now."""
        self._active = True
        if not at_start:
            self._position = self._tell()

    def update(self, rows: int, final: bool = False) -> None:
        """Adds ``rows`` and the bytes read since the last update."""
        if self._poster is None or not self._active:
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
