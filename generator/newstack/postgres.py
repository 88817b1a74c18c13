"""A throwaway PostgreSQL server for newstack's tests and bench: a new cluster in a temporary
directory, listening on 127.0.0.1 only, stopped by the process id it started and removed.

    with Cluster(max_connections=30) as pg:
        pg.url  # postgresql://postgres@127.0.0.1:PORT/postgres
        pg.stop(); pg.start()  # a database that goes away and comes back

PostgreSQL refuses to run as root: as root the cluster belongs to the `postgres` user (Debian's
`postgresql` package creates it) and its commands run through `runuser`.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from .errors import NewstackError

SUPERUSER = "postgres"


def bin_dir() -> Path:
    """Where initdb and pg_ctl are: on PATH, else Debian's /usr/lib/postgresql/VERSION/bin."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                      key=lambda p: int(Path(p).parts[4]) if Path(p).parts[4].isdigit() else 0)
    if not versions:
        raise NewstackError("PostgreSQL is not installed (no initdb): apt-get install postgresql")
    return Path(versions[-1]).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Cluster:
    """A PostgreSQL server of its own. `url` names its `postgres` database."""

    def __init__(self, max_connections: int = 100) -> None:
        self.max_connections = max_connections
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="newstack-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.bin = bin_dir()
        # as root, the cluster's commands run as its owner (`runuser -u postgres`, but the
        # process id is the command's own)
        self.owner = SUPERUSER if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/postgres"

    def __enter__(self) -> Self:
        try:
            if self.owner:
                shutil.chown(self.root, SUPERUSER, SUPERUSER)
            subprocess.run([str(self.bin / "initdb"), "-D", str(self.data), "-U", SUPERUSER,
                            "--auth=trust", "-E", "UTF8", "--no-sync"],
                           check=True, capture_output=True, timeout=120, cwd=self.root, user=self.owner,
                           group=self.owner, extra_groups=[] if self.owner else None)
            self.start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def start(self) -> None:
        """Start the server (again) on the same port and data, and wait until it answers."""
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.root),
            "max_connections": str(self.max_connections),
            "fsync": "off",  # a test database: speed over durability
            "synchronous_commit": "off",
            "full_page_writes": "off",
        }
        options = [arg for name, value in settings.items() for arg in ("-c", f"{name}={value}")]
        log = self.log.open("ab")
        # postgres itself, not pg_ctl: its process id is the one to stop
        self.process = subprocess.Popen(
            [str(self.bin / "postgres"), "-D", str(self.data), *options],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.root,
            user=self.owner, group=self.owner, extra_groups=[] if self.owner else None)
        log.close()
        self.wait_ready()

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            ready = subprocess.run([str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p",
                                    str(self.port), "-U", SUPERUSER],
                                   capture_output=True, check=False)
            if ready.returncode == 0:
                return
            if self.process is not None and self.process.poll() is not None:
                raise NewstackError(f"PostgreSQL did not start: {self.log.read_text()[-500:]}")
            if time.monotonic() > deadline:
                raise NewstackError(f"PostgreSQL did not answer within {timeout:.0f} s")
            time.sleep(0.1)

    def stop(self, timeout: float = 30) -> None:
        """Fast shutdown (SIGINT to the postmaster: clients are disconnected), by its pid."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run `sql`, return psql's unaligned output."""
        out = subprocess.run([str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port),
                              "-U", SUPERUSER, "-d", database, "-XAtq", "-v", "ON_ERROR_STOP=1",
                              "-c", sql], capture_output=True, text=True, check=True, timeout=60)
        return out.stdout.strip()

    def create_database(self, name: str) -> str:
        """A new empty database; returns its URL."""
        self.psql(f'CREATE DATABASE "{name}"')
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{name}"

    def connections(self, database: str) -> int:
        """Client connections open to `database` now (pg_stat_activity)."""
        return int(self.psql("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                             f"'{database}' AND backend_type = 'client backend'"))

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
