"""`dockyard backups` as a user runs it: the real console script against a stand-in API
that speaks the backups contract and records what it received."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.cli.test_deploy_cli import TOKEN
from tests.live import clean_environ, dockyard, ok, one_line_error, serving

BACKUPS = "/api/v1/projects/shop/stateful/db/backups"
GOOD_ID = "0a1b2c3d" + "0" * 24
SAFETY_ID = "5afe7e00" + "0" * 24
GOOD = {"id": GOOD_ID, "service_name": "db", "kind": "postgres", "version": "15.18",
        "trigger": "manual", "status": "good", "storage": "local", "size_bytes": 1_572_864,
        "sha256": "ab" * 32, "started_at": "2026-12-01T10:00:00Z",
        "finished_at": "2026-12-01T10:00:04Z", "duration_seconds": 4.25,
        "verification": "3 tables, 502 rows restored and matching the dump", "error": ""}
FAILED = {**GOOD, "id": "f" * 32, "status": "failed", "size_bytes": 900,
          "verification": "", "error": "verification failed: public.items: 3 rows dumped, 2 "
                                       "restored"}


@dataclass
class StandIn:
    url: str = ""
    received: list[tuple[str, str, Any]] = field(default_factory=list)

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route(BACKUPS, self.backups, methods=["GET", "POST"]),
            Route(BACKUPS + "/{backup}/restore", self.restore, methods=["POST"]),
            Route(BACKUPS + "/{backup}", self.delete, methods=["DELETE"]),
        ])

    async def record(self, request: Request) -> Any:
        body = await request.body()
        self.received.append((request.method, request.url.path,
                              json.loads(body) if body else None))
        return self.received[-1][2]

    async def backups(self, request: Request) -> Response:
        await self.record(request)
        if request.method == "POST":
            return JSONResponse(GOOD, status_code=201)
        return JSONResponse([GOOD, FAILED])

    async def restore(self, request: Request) -> Response:
        body = await self.record(request)
        if body["overwrite"] and body["confirm"] != "db":
            return JSONResponse({"detail": "confirm with its name (--confirm db)"}, 422)
        return JSONResponse({"backup": GOOD_ID, "service": "db" if body["overwrite"] else
                             body["into"] or "db-restored-20261201",
                             "overwritten": body["overwrite"],
                             "safety_backup": SAFETY_ID if body["overwrite"] else None})

    async def delete(self, request: Request) -> Response:
        await self.record(request)
        return Response(status_code=204)


@pytest.fixture
def standin() -> Iterator[StandIn]:
    stand = StandIn()
    with serving(stand.app()) as url:
        stand.url = url
        yield stand


def run(stand: StandIn, tmp_path: Path, *args: str, input: str | None = None) -> Any:
    env = {**clean_environ(), "DOCKYARD_URL": stand.url, "DOCKYARD_TOKEN": TOKEN,
           "XDG_CONFIG_HOME": str(tmp_path / "config"), "COLUMNS": "80"}
    return dockyard("backups", *args, env=env, input=input)


def test_create_says_what_verification_found(standin: StandIn, tmp_path: Path) -> None:
    assert ok(run(standin, tmp_path, "create", "-p", "shop", "db")) == (
        "Backup 0a1b2c3d of shop/db is good (1.5 MiB): 3 tables, 502 rows restored and "
        "matching the dump\n")
    assert standin.received == [("POST", BACKUPS, {})]


def test_list_shows_size_duration_and_verification_within_80_columns(
        standin: StandIn, tmp_path: Path) -> None:
    table = ok(run(standin, tmp_path, "list", "-p", "shop", "db"))
    assert all(len(line) <= 80 for line in table.splitlines()), table
    assert "1.5 MiB" in table
    assert "4.2s" in table
    assert "900 B" in table
    assert "3 tables, 502 rows" in table
    assert "verification failed" in table
    assert GOOD_ID not in table
    assert "0a1b2c3d" in table


def test_restore_goes_into_a_new_service_by_default(standin: StandIn, tmp_path: Path) -> None:
    out = ok(run(standin, tmp_path, "restore", "-p", "shop", "db", "0a1b2c3d"))
    assert out == "Restored backup 0a1b2c3d into the new service shop/db-restored-20261201.\n"
    assert standin.received == [("POST", f"{BACKUPS}/0a1b2c3d/restore",
                                 {"into": None, "overwrite": False, "confirm": None})]


def test_overwrite_asks_for_the_name_again(standin: StandIn, tmp_path: Path) -> None:
    out = ok(run(standin, tmp_path, "restore", "-p", "shop", "db", "0a1b2c3d", "--overwrite",
                 input="db\n"))
    assert "Type its name to confirm" in out
    assert out.endswith("Restored backup 0a1b2c3d over shop/db; its state before is backup "
                        "5afe7e00.\n")
    assert standin.received[-1][2] == {"into": None, "overwrite": True, "confirm": "db"}
    wrong = run(standin, tmp_path, "restore", "-p", "shop", "db", "0a1b2c3d", "--overwrite",
                "--confirm", "d")
    one_line_error(wrong, "--confirm db", "HTTP 422")


def test_delete(standin: StandIn, tmp_path: Path) -> None:
    assert ok(run(standin, tmp_path, "delete", "-p", "shop", "db", "0a1b2c3d")) == (
        "Deleted backup 0a1b2c3d of shop/db.\n")
    assert standin.received == [("DELETE", f"{BACKUPS}/0a1b2c3d", None)]
