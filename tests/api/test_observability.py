"""Correlation ids, structured logs, health, and an OpenAPI document that shows real parameters."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest

from dockyard.kernel.logging import configure_logging
from tests import sqlite_only

database_url = sqlite_only.database_url  # nothing here depends on the database kind


@pytest.fixture
def json_logs():
    stream = io.StringIO()
    configure_logging("DEBUG", json_lines=True, stream=stream)
    yield stream
    logging.getLogger().handlers[:] = []


async def test_incoming_request_id_is_echoed_and_recorded(client, owner):
    headers = {**owner.headers, "X-Request-ID": "trace-abc.123"}
    answer = await client.post("/api/v1/projects", json={"name": "shop"}, headers=headers)
    assert answer.headers["x-request-id"] == "trace-abc.123"
    history = (await client.get("/api/v1/history", headers=owner.headers)).json()
    assert history[0]["request_id"] == "trace-abc.123"


@pytest.mark.parametrize("incoming", [None, "", "bad id with spaces", "x" * 200, "a\tb"])
async def test_missing_or_unsafe_request_ids_are_replaced(client, incoming):
    headers = {"X-Request-ID": incoming} if incoming is not None else {}
    answer = await client.get("/healthz", headers=headers)
    generated = answer.headers["x-request-id"]
    assert generated != incoming
    assert len(generated) == 32
    assert (await client.get("/healthz")).headers["x-request-id"] != generated


async def test_every_log_line_of_a_request_carries_its_id(client, json_logs):
    logger = logging.getLogger("dockyard.test")

    from fastapi import APIRouter

    router = APIRouter()

    @router.get("/_log")
    async def emit() -> dict[str, str]:
        logger.info("first line")
        logger.warning("second line", extra={"service": "web"})
        return {}

    client._transport.app.include_router(router)  # type: ignore[attr-defined]
    await client.get("/_log", headers={"X-Request-ID": "req-42"})
    lines = [json.loads(line) for line in json_logs.getvalue().splitlines()]
    mine = [line for line in lines if line["logger"] == "dockyard.test"]
    assert [line["msg"] for line in mine] == ["first line", "second line"]
    assert {line["request_id"] for line in mine} == {"req-42"}
    assert mine[1]["service"] == "web"
    assert mine[1]["level"] == "warning"


async def test_console_format_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Tty()
    configure_logging("INFO", stream=stream)
    logging.getLogger("dockyard.test").info("hello")
    logging.getLogger().handlers[:] = []
    assert "INFO" in stream.getvalue()
    assert "hello" in stream.getvalue()
    assert not stream.getvalue().startswith("{")


async def test_secrets_do_not_reach_the_logs(client, owner, json_logs):
    await client.post("/api/v1/projects", json={"name": "shop"}, headers=owner.headers)
    await client.post("/api/v1/projects/shop/services", json={"name": "web"},
                      headers=owner.headers)
    body = {"value": "never-log-me", "secret": True}
    await client.put("/api/v1/projects/shop/services/web/env/TOKEN", json=body,
                     headers=owner.headers)
    await client.put("/api/v1/projects/shop/services/web/env/bad", json=body,
                     headers=owner.headers)
    assert "never-log-me" not in json_logs.getvalue()


async def test_healthz(client):
    answer = await client.get("/healthz")
    assert answer.status_code == 200
    assert answer.json()["status"] == "ok"
    assert answer.json()["database"] == "ok"


async def test_openapi_shows_the_real_parameters_of_every_route(client):
    spec = (await client.get("/openapi.json")).json()
    history = spec["paths"]["/api/v1/history"]["get"]
    names = {p["name"] for p in history["parameters"]}
    assert {"entity_type", "entity_id", "before_id", "limit", "X-Dockyard-Workspace"} <= names
    put_env = spec["paths"]["/api/v1/projects/{project}/services/{service}/env/{key}"]["put"]
    assert {p["name"] for p in put_env["parameters"] if p["in"] == "path"} == {
        "project", "service", "key"}
    assert "requestBody" in put_env
    assert "429" in spec["paths"]["/api/v1/auth/token"]["post"]["responses"]
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            assert operation.get("summary") or operation.get("description"), (method, path)
    assert "OAuth2PasswordBearer" in spec["components"]["securitySchemes"]


async def test_openapi_has_short_unique_operation_ids_and_every_schema_it_names(client):
    """What a standard generator needs for a complete typed client."""
    spec = (await client.get("/openapi.json")).json()
    ids = [op["operationId"] for ops in spec["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z][a-z_]{1,29}", op) for op in ids), ids
    named = set(re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(spec)))
    assert named <= set(spec["components"]["schemas"])
    assert "DeployRequest" in named
