"""The files an import writes for its caller (``--findings-file``, ``--report-file``).

A local path is an ordinary file. A path with a scheme (``gs://bucket/findings.json``, or
any filesystem Beam has registered) is written through Beam's ``FileSystems``, so an import
run on Dataflow can leave its findings and report in Cloud Storage.
"""

from __future__ import annotations

import io
import json
from typing import Any, TextIO

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems


def has_scheme(path: str) -> bool:
    """Whether ``path`` names a Beam filesystem (``gs://...``) rather than a local file."""
    return FileSystems.get_scheme(path) is not None


def _create(path: str, data: bytes) -> None:
    # UNCOMPRESSED: Beam would otherwise gzip a path ending in .gz; the caller named a file.
    with FileSystems.create(
        path, mime_type="application/json", compression_type=CompressionTypes.UNCOMPRESSED
    ) as f:
        f.write(data)


class _UploadOnClose(io.StringIO):
    """Text kept in memory and written to a FileSystems path when closed.

    An object store has no truncate and no append: the whole object is written at once.
    """

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def close(self) -> None:
        if not self.closed:
            _create(self.path, self.getvalue().encode("utf-8"))
        super().close()


def open_output(path: str, *, truncate_now: bool = False) -> TextIO:
    """Opens ``path`` for writing text, replacing what it held.

    Args:
        path: a local path, or a URI of a Beam filesystem (``gs://bucket/findings.json``).
        truncate_now: for a URI, create it empty at once (what opening a local file for
            writing does), so that a stale file from an earlier run is gone even if this
            run ends before writing, and a path that cannot be written fails before the
            import runs rather than after it. A local path is always truncated at once.

    Returns:
        A text file; for a URI its content is written when it is closed.
    """
    if not has_scheme(path):
        return open(path, "w", encoding="utf-8")  # noqa: SIM115 - the caller closes it
    if truncate_now:
        _create(path, b"")
    return _UploadOnClose(path)


def write_findings(f: TextIO, findings: list[dict[str, Any]]) -> None:
    """Writes findings as Sentry's ``--findings-file`` does: a sorted, indented JSON list."""
    json.dump(findings, f, sort_keys=True, ensure_ascii=True, indent=2)
    f.write("\n")


def write_report(f: TextIO, import_uuid: str, report: list[dict[str, Any]]) -> None:
    """Writes the ``--report-file``: every skipped, dropped or failed row with its reason."""
    json.dump({"import_uuid": import_uuid, "rows": report}, f, indent=1)
