"""``ReadExport``: streams a Sentry export (plain or encrypted) into rows."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from relocate.io.export_reader import BadRow, ExportFormatError, iter_export

log = logging.getLogger("relocate.read")

BAD = "bad"
PROGRESS_EVERY = 100_000


def open_source(path: str) -> Any:
    """Opens a local path, a ``gs://`` URI (Beam FileSystems) or ``-`` (stdin)."""
    if path == "-":
        return sys.stdin.buffer
    return FileSystems.open(path, compression_type="uncompressed")


class _ReadExportFn(beam.DoFn):
    """Reads one export; emits ``Row`` on the main output and ``BadRow`` on ``bad``."""

    def __init__(self, decryption: Any | None, known_models: frozenset[str]) -> None:
        self._decryption = decryption
        self._known = known_models

    def setup(self) -> None:
        self._rows = Metrics.counter("relocate", "rows_read")

    def process(self, path: str) -> Iterator[Any]:
        from relocate.io.crypto import input_kind_error, open_plaintext, read_head

        source = open_source(path)
        try:
            head, stream = read_head(source)
            problem = input_kind_error(head, decrypting=self._decryption is not None)
            if problem is not None:
                raise ExportFormatError(problem)
            if self._decryption is not None:
                with open_plaintext(stream, self._decryption) as plain:
                    yield from self._rows_of(plain)
            else:
                yield from self._rows_of(stream)
        finally:
            if path != "-":
                source.close()

    def _rows_of(self, stream: Any) -> Iterator[Any]:
        count = 0
        for item in iter_export(stream):
            count += 1
            if count % PROGRESS_EVERY == 0:
                log.info("read %d rows", count)
            if isinstance(item, BadRow):
                yield beam.pvalue.TaggedOutput(BAD, item)
                continue
            self._rows.inc()
            known = item.model in self._known
            Metrics.counter("relocate.read", item.model if known else "<other>").inc()
            if not known and item.model != "sentry.actor":
                # Only skipped and reported: its fields need not travel (nor take memory).
                item = item._replace(fields={})
            yield tuple(item)  # a plain tuple crosses Beam's coders fastest
        log.info("read %d rows in all", count)


class ReadExport(beam.PTransform):
    """Reads the export at ``path``.

    Returns a tagged result: the main output holds ``Row``s, ``bad`` holds ``BadRow``s.
    """

    def __init__(self, path: str, decryption: Any | None, known_models: frozenset[str]) -> None:
        super().__init__()
        self.path = path
        self.decryption = decryption
        self.known_models = known_models

    def expand(self, pbegin: beam.pvalue.PBegin) -> Any:
        return (
            pbegin
            | "Source" >> beam.Create([self.path])
            | "Parse"
            >> beam.ParDo(_ReadExportFn(self.decryption, self.known_models)).with_outputs(
                BAD, main="rows"
            )
        )
