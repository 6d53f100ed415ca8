"""Sentry's ``backup encrypt`` and ``backup decrypt`` commands (spec 1.3).

``register(subparsers)`` adds::

    backup encrypt DEST --src FILE
        (--encrypt-with PUBLIC_KEY.pem | --encrypt-with-gcp-kms CONFIG.json)
    backup decrypt DEST --src FILE
        (--decrypt-with PRIVATE_KEY.pem | --decrypt-with-gcp-kms CONFIG.json)

``DEST`` and ``--src`` accept ``-`` for stdout / stdin. Both commands stream, so their
memory use does not grow with the export, and both write ``DEST`` all or nothing: a
file ``DEST`` is written beside itself under a temporary name (mode 0600) and renamed
on success. Sentry's texts are kept ("Invalid input JSON", "Invalid tarball: ...",
its usage errors); unlike Sentry, a failure exits with status 1 (usage errors 2).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import ijson

from relocate.cli.terminal import terminal_safe
from relocate.io.crypto import (
    DECRYPT_FLAG_REQUIRED,
    ENCRYPT_FLAG_REQUIRED,
    ENCRYPT_FLAGS_EXCLUSIVE,
    DecryptionError,
    DecryptionSpec,
    EncryptionError,
    UsageError,
    decrypt_to,
    encrypt_export,
    parse_kms_config,
)

if TYPE_CHECKING:
    from typing import Self  # Python 3.11+, annotations only

__all__ = ("backup_decrypt", "backup_encrypt", "register")

_CHUNK = 1 << 20

DECRYPT_WITH_HELP = (
    "A PEM file with the (unencrypted) RSA private key whose public key was used to "
    "encrypt the tarball. Mutually exclusive with --decrypt-with-gcp-kms."
)
DECRYPT_WITH_GCP_KMS_HELP = (
    "A JSON file naming a Google Cloud KMS asymmetric key version instead of a local "
    'private key: {"project_id": "...", "location": "global", "key_ring": "...", '
    '"key": "...", "version": "1"} (exactly these fields, all strings).'
)
ENCRYPT_WITH_HELP = (
    "A PEM file with the RSA public key to encrypt with. The output is a tarball of "
    "export.json (the data, Fernet-encrypted), data.key (the Fernet key, encrypted "
    "with this public key) and key.pub (this public key)."
)
ENCRYPT_WITH_GCP_KMS_HELP = (
    "Like --encrypt-with, but the public key is fetched from the Google Cloud KMS key "
    "version named in this JSON file (same format as --decrypt-with-gcp-kms)."
)


def _print_error(message: str) -> None:
    # Messages quote the tarball (its member names): escaped for the terminal.
    print(terminal_safe(message), file=sys.stderr)


def _read_flag_file(flag: str, path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise UsageError(f"Invalid value for '{flag}': '{path}': {e.strerror}") from e


@contextlib.contextmanager
def _open_src(path: str) -> Iterator[BinaryIO]:
    if path == "-":
        yield sys.stdin.buffer
        return
    try:
        src = open(path, "rb")  # noqa: SIM115 - closed by the with below
    except OSError as e:
        raise UsageError(f"Invalid value for '--src': '{path}': {e.strerror}") from e
    with src:
        yield src


class _Output:
    """``DEST``, written all or nothing.

    A path is written to a temporary file beside it and renamed by ``commit()``.
    ``-`` is stdout: written through directly, or (``spool_stdout``, only ever for
    ciphertext) spooled to a temporary file and copied out on ``commit()``.
    """

    def __init__(self, dest: str, *, spool_stdout: bool) -> None:
        self._dest = dest
        self._spool_stdout = spool_stdout
        self._temp_path: str | None = None
        self.stream: BinaryIO

    def __enter__(self) -> Self:
        if self._dest == "-":
            if self._spool_stdout:
                self.stream = tempfile.TemporaryFile(prefix="relocate-backup-")  # type: ignore[assignment]
            else:
                self.stream = sys.stdout.buffer
            return self
        parent = os.path.dirname(os.path.abspath(self._dest))
        try:
            fd, self._temp_path = tempfile.mkstemp(
                dir=parent, prefix=f".{os.path.basename(self._dest)}.", suffix=".part"
            )
        except OSError as e:
            raise UsageError(f"Invalid value for 'DEST': '{self._dest}': {e.strerror}") from e
        self.stream = os.fdopen(fd, "wb")
        return self

    def commit(self) -> None:
        if self._dest == "-":
            stdout = sys.stdout.buffer
            if self._spool_stdout:
                self.stream.seek(0)
                shutil.copyfileobj(self.stream, stdout, _CHUNK)
                self.stream.close()
            stdout.flush()
            return
        assert self._temp_path is not None
        self.stream.close()
        os.replace(self._temp_path, self._dest)
        self._temp_path = None

    def __exit__(self, *exc_info: object) -> None:
        if self._dest == "-":
            if self._spool_stdout:
                self.stream.close()
            return
        if self._temp_path is not None:  # not committed: leave nothing behind
            self.stream.close()
            with contextlib.suppress(OSError):
                os.unlink(self._temp_path)


class _JsonCheckingReader:
    """Passes reads through while checking, incrementally, that they form valid JSON."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._events = ijson.sendable_list()
        self._parser = ijson.basic_parse_coro(self._events)
        self.error: Exception | None = None

    def read(self, size: int = -1) -> bytes:
        chunk = self._raw.read(size)
        if chunk and self.error is None:
            try:
                self._parser.send(chunk)
            except ijson.JSONError as e:
                self.error = e
            del self._events[:]  # the events are not needed, only the verdict
        return chunk

    def finish(self) -> bool:
        """Whether everything read so far was exactly one JSON value."""
        if self.error is None:
            try:
                self._parser.close()
            except ijson.JSONError as e:
                self.error = e
        return self.error is None


def backup_encrypt(
    dest: str,
    src: str,
    *,
    encrypt_with: str | None = None,
    encrypt_with_gcp_kms: str | None = None,
    kms_endpoint: str | None = None,
) -> int:
    """Encrypt the JSON export ``src`` into the tarball ``dest`` (``backup encrypt``).

    Returns:
        0 on success, 1 when ``src`` is not JSON ("Invalid input JSON") or encryption
        fails; ``dest`` is then left untouched.

    Raises:
        UsageError: Flags missing or contradictory, or a file cannot be opened.
    """
    if encrypt_with is not None and encrypt_with_gcp_kms is not None:
        raise UsageError(ENCRYPT_FLAGS_EXCLUSIVE)
    if encrypt_with is None and encrypt_with_gcp_kms is None:
        raise UsageError(ENCRYPT_FLAG_REQUIRED)
    public_key_pem = kms_config = None
    try:
        if encrypt_with is not None:
            public_key_pem = _read_flag_file("--encrypt-with", encrypt_with)
        else:
            assert encrypt_with_gcp_kms is not None
            kms_config = parse_kms_config(
                _read_flag_file("--encrypt-with-gcp-kms", encrypt_with_gcp_kms),
                EncryptionError,
            )
        with _open_src(src) as source, _Output(dest, spool_stdout=True) as output:
            info = os.fstat(source.fileno()) if src != "-" else None
            size = info.st_size if info is not None and stat.S_ISREG(info.st_mode) else None
            checked = _JsonCheckingReader(source)
            encrypt_export(
                checked,  # type: ignore[arg-type]
                output.stream,
                public_key_pem=public_key_pem,
                kms_config=kms_config,
                kms_endpoint=kms_endpoint,
                size=size,
            )
            if not checked.finish():
                _print_error("Invalid input JSON")
                return 1
            output.commit()
    except EncryptionError as e:
        _print_error(f"Could not encrypt: {e}")
        return 1
    return 0


def backup_decrypt(
    dest: str,
    src: str,
    *,
    decrypt_with: str | None = None,
    decrypt_with_gcp_kms: str | None = None,
    kms_endpoint: str | None = None,
) -> int:
    """Decrypt the tarball ``src`` into the JSON file ``dest`` (``backup decrypt``).

    Returns:
        0 on success, 1 on a decryption failure ("Invalid tarball: ..."), in which case
        nothing is written.

    Raises:
        UsageError: Flags missing or contradictory, or a file cannot be opened.
    """
    try:
        spec = DecryptionSpec.from_flags(decrypt_with, decrypt_with_gcp_kms, kms_endpoint)
    except OSError as e:
        flag = "--decrypt-with" if e.filename == decrypt_with else "--decrypt-with-gcp-kms"
        raise UsageError(f"Invalid value for '{flag}': '{e.filename}': {e.strerror}") from e
    except DecryptionError as e:
        _print_error(f"Invalid tarball: {e}")
        return 1
    if spec is None:
        raise UsageError(DECRYPT_FLAG_REQUIRED)
    # Plaintext goes straight to stdout, never through a spool file.
    with _open_src(src) as source, _Output(dest, spool_stdout=False) as output:
        try:
            decrypt_to(source, output.stream, spec)
        except DecryptionError as e:
            _print_error(f"Invalid tarball: {e}")
            return 1
        output.commit()
    return 0


def _usage_error(parser: argparse.ArgumentParser, message: str) -> int:
    # argparse's own format (usage line, then "prog: error: ..."), without SystemExit.
    parser.print_usage(sys.stderr)
    _print_error(f"{parser.prog}: error: {message}")
    return 2


def _run_encrypt(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    try:
        return backup_encrypt(
            args.dest,
            args.src,
            encrypt_with=args.encrypt_with,
            encrypt_with_gcp_kms=args.encrypt_with_gcp_kms,
            kms_endpoint=args.gcp_kms_endpoint,
        )
    except UsageError as e:
        return _usage_error(parser, str(e))


def _run_decrypt(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    try:
        return backup_decrypt(
            args.dest,
            args.src,
            decrypt_with=args.decrypt_with,
            decrypt_with_gcp_kms=args.decrypt_with_gcp_kms,
            kms_endpoint=args.gcp_kms_endpoint,
        )
    except UsageError as e:
        return _usage_error(parser, str(e))


def _add_endpoint_option(parser: argparse.ArgumentParser) -> None:
    # Hidden: points the KMS client at a local server (tests); None means Google's.
    parser.add_argument("--gcp-kms-endpoint", metavar="HOST:PORT", help=argparse.SUPPRESS)


def register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Add the ``backup`` command, with ``encrypt`` and ``decrypt``, to a CLI.

    Each sub-command sets ``func`` on the namespace: ``args.func(args)`` runs it and
    returns the exit status.

    Returns:
        The ``backup`` parser.
    """
    backup = subparsers.add_parser(
        "backup",
        help="encrypt or decrypt Sentry export tarballs",
        description="Helper tools for Sentry backup exports.",
    )
    commands = backup.add_subparsers(dest="backup_command", metavar="COMMAND", required=True)

    encrypt = commands.add_parser(
        "encrypt",
        help="encrypt a JSON export into a tarball",
        description="Encrypt an unencrypted raw JSON export into an encrypted tarball.",
    )
    encrypt.add_argument("dest", metavar="DEST", help="the tarball to write ('-': stdout)")
    encrypt.add_argument(
        "--src",
        required=True,
        metavar="FILE",
        help="the JSON export to encrypt ('-': stdin)",
    )
    encrypt.add_argument("--encrypt-with", metavar="PUBLIC_KEY.pem", help=ENCRYPT_WITH_HELP)
    encrypt.add_argument(
        "--encrypt-with-gcp-kms", metavar="CONFIG.json", help=ENCRYPT_WITH_GCP_KMS_HELP
    )
    _add_endpoint_option(encrypt)
    encrypt.set_defaults(func=functools.partial(_run_encrypt, encrypt))

    decrypt = commands.add_parser(
        "decrypt",
        help="decrypt a tarball into a JSON export",
        description="Decrypt an encrypted tarball export into an unencrypted JSON file.",
    )
    decrypt.add_argument("dest", metavar="DEST", help="the JSON file to write ('-': stdout)")
    decrypt.add_argument(
        "--src",
        required=True,
        metavar="FILE",
        help="the tarball to decrypt ('-': stdin)",
    )
    decrypt.add_argument("--decrypt-with", metavar="PRIVATE_KEY.pem", help=DECRYPT_WITH_HELP)
    decrypt.add_argument(
        "--decrypt-with-gcp-kms", metavar="CONFIG.json", help=DECRYPT_WITH_GCP_KMS_HELP
    )
    _add_endpoint_option(decrypt)
    decrypt.set_defaults(func=functools.partial(_run_decrypt, decrypt))
    return backup
