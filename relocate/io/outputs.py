"""The files an import writes for its caller (``--findings-file``, ``--report-file``).

A local path is an ordinary file. A path with a scheme (``gs://bucket/findings.json``, or
any filesystem Beam has registered) is written through Beam's ``FileSystems``, so an import
run on Dataflow can leave its findings and report in Cloud Storage.
"""

from __future__ import annotations

import io
import json
import os
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


class OutputPathError(ValueError):
    """An output file that could not be written."""


def check_output(path: str) -> None:
    """Makes sure ``path`` can be written, before the import writes anything anywhere.

    A local path is opened for appending (nothing it holds is lost) and, if it did not
    exist, removed again: its folder exists, is a folder, and may be written. A URI is
    created empty at once, as ``open_output(truncate_now=True)`` does: an object store
    has no cheaper probe of write access, and a stale file of an earlier run is gone.

    Raises:
        OutputPathError: the path cannot be written; the message says why.
    """
    if has_scheme(path):
        try:
            _create(path, b"")
        except Exception as exc:  # noqa: BLE001 - Beam's and the store's errors vary
            raise OutputPathError(f"cannot write {path}: {exc}") from None
        return
    existed = os.path.lexists(path)
    try:
        with open(path, "a", encoding="utf-8"):
            pass
    except OSError as exc:
        raise OutputPathError(_why(path, exc)) from None
    if not existed:
        os.remove(path)


def _why(path: str, exc: OSError) -> str:
    parent = os.path.dirname(os.path.abspath(path))
    if isinstance(exc, IsADirectoryError):
        return f"{path} is a directory, not a file"
    if isinstance(exc, NotADirectoryError):
        return f"cannot write {path}: a part of {parent} is a file, not a folder"
    if isinstance(exc, FileNotFoundError):
        return f"cannot write {path}: the folder {parent} does not exist"
    return f"cannot write {path}: {exc.strerror or exc}"


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
