"""A throwaway PostgreSQL server for the tests of the PostgreSQL controller: ``initdb`` in a temporary
directory, ``pg_ctl start`` on a free port of 127.0.0.1 (its socket in that directory too), fsync off, and
``pg_ctl stop`` afterwards; what pytest-postgresql's ``postgresql_proc`` does, without its dependencies.
Run as root (the test machines), the server runs as the ``postgres`` user (PostgreSQL refuses root).

``make install`` installs Debian's postgresql (tools/postgres_setup.sh); ``binaries()`` finds initdb on
PATH or in /usr/lib/postgresql/<version>/bin, and the tests skip, saying why, when it finds none.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid

import pytest


def binaries() -> str | None:
    """The directory holding initdb and pg_ctl, or None."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return os.path.dirname(os.path.realpath(found))
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.access(os.path.join(d, "initdb"), os.X_OK) and os.access(os.path.join(d, "pg_ctl"), os.X_OK):
            return d
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    USER = "kbroker"

    def __init__(self):
        self.bin = binaries()
        if self.bin is None:
            raise RuntimeError("no PostgreSQL server binaries (initdb, pg_ctl): apt-get install postgresql")
        self.dir = tempfile.mkdtemp(prefix="kbroker-pg-")
        self.data = os.path.join(self.dir, "data")
        self.port = 0
        self._as = None  # (uid, gid) to run the server as, when we are root
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            self._as = (pw.pw_uid, pw.pw_gid)
            os.chown(self.dir, *self._as)

    def _run(self, *args: str) -> None:
        def demote():
            if self._as is not None:
                os.setgid(self._as[1])
                os.setuid(self._as[0])
        proc = subprocess.run([os.path.join(self.bin, args[0]), *args[1:]], preexec_fn=demote,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=self.dir)
        if proc.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({proc.returncode}):\n{proc.stdout}")

    def start(self) -> "PostgresServer":
        self._run("initdb", "-D", self.data, "-A", "trust", "-U", self.USER, "-E", "UTF8", "--no-sync")
        for attempt in range(5):  # the free port may be taken between finding and binding it
            self.port = _free_port()
            opts = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                    f"-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
            try:
                self._run("pg_ctl", "-D", self.data, "-o", opts, "-l", os.path.join(self.dir, "server.log"),
                          "-w", "-t", "60", "start")
                return self
            except RuntimeError:
                if attempt == 4:
                    raise
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.USER}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database; its URL (each cluster of a test gets its own)."""
        import psycopg

        name = f"kb_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def restart(self) -> None:
        """Stop (every session ends) and start again on the same port and data. A fast shutdown, not an
        immediate one: with synchronous_commit off, a crash would lose the last commits."""
        self._run("pg_ctl", "-D", self.data, "-l", os.path.join(self.dir, "server.log"), "-m", "fast", "-w",
                  "-t", "60", "restart")

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


needs_postgres = pytest.mark.skipif(binaries() is None, reason="no PostgreSQL server binaries (initdb, pg_ctl): "
                                                              "apt-get install postgresql, or make install")


@pytest.fixture(scope="module")
def pg():
    """A throwaway server for the test module; ``pg.new_database()`` gives each cluster its own database."""
    server = PostgresServer().start()
    yield server
    server.stop()
