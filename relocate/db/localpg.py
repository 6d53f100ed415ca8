"""A private PostgreSQL cluster on this machine: for the tests and the embedded default.

``LocalCluster`` runs ``initdb`` and ``pg_ctl`` from the PostgreSQL server binaries on
127.0.0.1 and a free port. PostgreSQL refuses to run as root, so when the process is root
the cluster's directory is handed to the ``postgres`` user (or ``nobody``) and the
binaries run as that user.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

INSTALL_HINT = (
    "PostgreSQL server binaries (initdb, pg_ctl) were not found. Install them, e.g. "
    "`apt-get install postgresql` on Debian/Ubuntu or `brew install postgresql` on macOS, "
    "set PG_BIN to the directory holding initdb, or pass --dsn to use an existing server."
)


class PostgresNotFound(RuntimeError):
    """No PostgreSQL server binaries on this machine."""


def find_pg_bindir() -> str:
    """Returns the directory of the PostgreSQL server binaries (newest version first)."""
    if os.environ.get("PG_BIN"):
        if os.path.exists(os.path.join(os.environ["PG_BIN"], "initdb")):
            return os.environ["PG_BIN"]
        raise PostgresNotFound(f"PG_BIN={os.environ['PG_BIN']} holds no initdb. {INSTALL_HINT}")
    found = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    if found:
        found.sort(key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
        return os.path.dirname(found[-1])
    for name in ("initdb", "pg_ctl"):
        path = shutil.which(name)
        if path and os.path.exists(os.path.join(os.path.dirname(path), "pg_ctl")):
            return os.path.dirname(os.path.realpath(path))
    raise PostgresNotFound(INSTALL_HINT)


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
    """

    base_dir: Path
    port: int = 0
    durable: bool = True

    def __post_init__(self) -> None:
        self.base_dir = Path(self.base_dir)
        self.bindir = find_pg_bindir()

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
