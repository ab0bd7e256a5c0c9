"""`dockyard up` runs the worker too: request records flow from the API through the database
outbox to the worker and into the admin metrics endpoints, with no Redis configured."""

from __future__ import annotations

import httpx

from tests.live import ADMIN_EMAIL, ADMIN_PASSWORD, Live, wait_until


def test_requests_made_to_the_api_are_recorded_by_the_worker(live: Live) -> None:
    assert "Started the worker" in live.up_output
    login = httpx.post(f"{live.url}/api/v1/auth/token",
                       data={"username": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    headers = {"Authorization": f"Bearer {login.json()['access_token']}",
               "X-Request-ID": "metrics-live-1", "User-Agent": "live-test"}
    httpx.get(f"{live.url}/api/v1/projects?probe=1", headers=headers).raise_for_status()

    def recorded() -> list[dict[str, object]]:
        answer = httpx.get(f"{live.url}/metrics/requests",
                           params={"path_prefix": "/api/v1/projects"}, headers=headers)
        answer.raise_for_status()
        return [r for r in answer.json() if r["request_id"] == "metrics-live-1"]

    wait_until(lambda: bool(recorded()), "the worker has stored the request's record")
    record = recorded()[0]
    assert (record["method"], record["path"], record["status_code"]) == (
        "GET", "/api/v1/projects", 200)
    assert record["user_agent"] == "live-test"
    assert record["user_id"]
    exposition = httpx.get(f"{live.url}/metrics").text
    assert "dockyard_http_requests_total" in exposition
