"""`dockyard openapi` prints the document the API serves: what the dashboard's typed client
and any other generator are built from."""

from __future__ import annotations

import json

import httpx

from tests.live import Live, clean_environ, dockyard, ok


def test_the_printed_document_is_the_served_one(live: Live) -> None:
    printed = json.loads(ok(dockyard("openapi", env=clean_environ())))
    served = httpx.get(f"{live.url}/openapi.json", timeout=10).json()
    assert printed == served
    operations = {op["operationId"] for path in printed["paths"].values() for op in path.values()}
    assert {"log_in", "list_projects", "deploy", "deployment_events"} <= operations
