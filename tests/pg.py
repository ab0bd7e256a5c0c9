"""A real PostgreSQL server for the test session, on a free loopback port."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.ports import free_port

PG_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
INSTALL_HINT = "PostgreSQL server binaries are missing: apt-get install -y postgresql"


def _pg_bin(name: str) -> str:
    for directory in PG_BIN_DIRS:
        if (directory / name).exists():
            return str(directory / name)
    pytest.fail(INSTALL_HINT)


def _as_postgres(argv: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root; run it as the `postgres` user then."""
    if os.geteuid() != 0:
        return argv
    if shutil.which("runuser") is None:
        pytest.fail("runuser is missing: apt-get install -y util-linux")
    return ["runuser", "-u", "postgres", "--", *argv]


@dataclass
class PgServer:
    port: int
    process: subprocess.Popen[bytes]
    base: Path

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str) -> None:
        argv = [_pg_bin("psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-qc", sql]
        subprocess.run(argv, check=True, capture_output=True)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        shutil.rmtree(self.base, ignore_errors=True)


def _wait_ready(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    argv = [_pg_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres"]
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"postgres exited early:\n{log.read_text()[-2000:]}")
        if subprocess.run(argv, capture_output=True).returncode == 0:
            return
        time.sleep(0.1)
    pytest.fail("postgres did not become ready within 60 s")


def start_postgres() -> PgServer:
    """Its directory is outside pytest's private tmp, which the postgres user cannot enter."""
    base = Path(tempfile.mkdtemp(prefix="dockyard-pg-"))
    data, log = base / "data", base / "postgres.log"
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
    subprocess.run(
        _as_postgres([_pg_bin("initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
                      "--no-sync", "-E", "UTF8"]),
        check=True, capture_output=True,
    )
    port = free_port()
    argv = [_pg_bin("postgres"), "-D", str(data), "-p", str(port), "-h", "127.0.0.1",
            "-k", str(base), "-c", "fsync=off", "-c", "full_page_writes=off",
            "-c", "synchronous_commit=off", "-c", "max_connections=200"]
    with log.open("wb") as out:
        process = subprocess.Popen(_as_postgres(argv), stdout=out, stderr=subprocess.STDOUT)
    _wait_ready(port, process, log)
    return PgServer(port, process, base)
