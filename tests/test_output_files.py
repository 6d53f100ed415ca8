"""``--findings-file`` / ``--report-file`` on a URI: written through Beam's FileSystems.

Beam registers no in-memory filesystem, and gs:// needs a cloud account. Beam finds its
filesystems by subclass and scheme, so this module registers a real one of its own,
``relocatetest://``, that keeps its objects as files under a test directory: a path with a
scheme reaches it only through ``FileSystems``, exactly as a ``gs://`` path reaches GCS.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import pytest
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.localfilesystem import LocalFileSystem

from relocate.io.outputs import has_scheme, open_output

from .helpers import import_export, user, write_export

SCHEME = "relocatetest"


class DirectoryFileSystem(LocalFileSystem):
    """``relocatetest://a/b`` is the file ``root/a/b``; what Beam calls a filesystem."""

    root: ClassVar[Path | None] = None
    created: ClassVar[list[str]] = []

    @classmethod
    def scheme(cls) -> str:
        return SCHEME

    def _local(self, path: str) -> str:
        assert self.root is not None, "the test filesystem has no root"
        prefix = f"{SCHEME}://"
        assert path.startswith(prefix), path
        return str(self.root / path[len(prefix) :])

    def create(
        self,
        path: str,
        mime_type: str = "application/octet-stream",
        compression_type: str = CompressionTypes.AUTO,
    ) -> BinaryIO:
        type(self).created.append(path)
        return super().create(self._local(path), mime_type, compression_type)

    def open(
        self,
        path: str,
        mime_type: str = "application/octet-stream",
        compression_type: str = CompressionTypes.AUTO,
    ) -> BinaryIO:
        return super().open(self._local(path), mime_type, compression_type)

    def exists(self, path: str) -> bool:
        return super().exists(self._local(path))


@pytest.fixture
def test_filesystem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The root directory of ``relocatetest://`` for this test."""
    root = tmp_path / "bucket"
    root.mkdir()
    monkeypatch.setattr(DirectoryFileSystem, "root", root)
    monkeypatch.setattr(DirectoryFileSystem, "created", [])
    yield root


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def test_only_a_path_with_a_scheme_goes_through_filesystems() -> None:
    assert has_scheme("gs://bucket/findings.json")
    assert has_scheme(f"{SCHEME}://out/findings.json")
    assert not has_scheme("findings.json")
    assert not has_scheme("/tmp/gs:/findings.json")


def test_local_findings_file_is_truncated_at_once(tmp_path: Path) -> None:
    path = tmp_path / "findings.json"
    path.write_text("stale", encoding="utf-8")
    f = open_output(str(path), truncate_now=True)
    try:
        assert path.read_text(encoding="utf-8") == ""  # as Sentry: before anything else
        f.write("[]\n")
    finally:
        f.close()
    assert path.read_text(encoding="utf-8") == "[]\n"


def test_uri_is_created_empty_at_once_and_written_when_closed(test_filesystem: Path) -> None:
    stored = test_filesystem / "out" / "findings.json"
    stored.parent.mkdir()
    stored.write_text("stale", encoding="utf-8")
    f = open_output(f"{SCHEME}://out/findings.json", truncate_now=True)
    assert stored.read_text(encoding="utf-8") == ""  # the stale object is gone at once
    f.write('[{"kind": "ValidationError"}]\n')
    assert stored.read_text(encoding="utf-8") == ""  # an object is written whole, on close
    f.close()
    assert read_json(stored) == [{"kind": "ValidationError"}]
    assert DirectoryFileSystem.created == [f"{SCHEME}://out/findings.json"] * 2


def test_uri_not_truncated_now_is_written_once(test_filesystem: Path) -> None:
    with open_output(f"{SCHEME}://report.json.gz") as f:
        assert DirectoryFileSystem.created == []
        f.write("{}")
    # Written as named: no gzip inferred from the extension.
    assert (test_filesystem / "report.json.gz").read_bytes() == b"{}"
    assert DirectoryFileSystem.created == [f"{SCHEME}://report.json.gz"]


def test_import_writes_findings_and_report_through_filesystems(
    db_dsn: str, tmp_path: Path, test_filesystem: Path
) -> None:
    src = write_export(tmp_path / "long.json", [user(7, "x" * 129), user(8, "fine")])
    run = import_export(
        db_dsn,
        "users",
        src,
        "--findings-file",
        f"{SCHEME}://out/findings.json",
        "--report-file",
        f"{SCHEME}://out/report.json",
    )
    assert run.code == 1
    (finding,) = read_json(test_filesystem / "out" / "findings.json")
    assert (finding["kind"], finding["left_pk"]) == ("ValidationError", 7)
    report = read_json(test_filesystem / "out" / "report.json")
    assert [(r["model"], r["action"]) for r in report["rows"]] == [("sentry.user", "error")]
    assert not Path(f"{SCHEME}:").exists()  # no local file under the literal name
