"""Logs end to end on the 3-node namespace cluster: the example deployed, requested, and its
access lines read back with `dockyard logs` once the worker has collected them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e.stage import EXAMPLE, Stage
from tests.live import dockyard, ok, wait_until

pytestmark = pytest.mark.slow
FAST = {"grace_seconds": 0.5, "health_interval_seconds": 0.2}
HOST = "hello.journal.localhost"


def test_the_apps_access_lines_reach_dockyard_logs(stage: Stage) -> None:
    stage.ensure_service("journal", "hello")
    events = stage.deploy_archive(EXAMPLE, project="journal", service="hello",
                                  server=[n["name"] for n in stage.nodes], **FAST)
    assert events[-1]["status"] == "succeeded", events[-3:]
    release = events[-1]["deployment_id"]
    node = stage.nodes[0]
    assert stage.app(node, HOST, "/logs-e2e-marker").status_code < 500

    def marker_lines() -> list[dict[str, Any]]:
        shown = ok(dockyard("logs", "-p", "journal", "-s", "hello", "--json", "--tail", "1000",
                            env=stage.env))
        entries = [json.loads(line) for line in shown.splitlines()]
        return [e for e in entries if "logs-e2e-marker" in e["line"]]

    wait_until(marker_lines, "the request's access line in `dockyard logs`", timeout=60)
    entry = marker_lines()[0]
    assert (entry["server"], entry["release"], entry["process_type"]) == (
        node["name"], release, "web")
