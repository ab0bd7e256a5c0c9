"""`dockyard servers events NAME`: what the reconciler did on a server and its drift, in
80 columns."""

from __future__ import annotations

from datetime import UTC, datetime

from dockyard.cli.resources import server_event_lines
from tests.live import Live, one_line_error

NOW = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)
STRAY = "shop-web-4c650e15"


def test_events_then_drift_fit_80_columns() -> None:
    events = [{"time": "2026-12-02T00:58:00+00:00", "kind": "removed",
               "message": f"removed stray container {STRAY}-worker-12 of failed deployment "
                          "4c650e15"}]
    drift = [{"subject": STRAY, "since": "2026-12-02T00:59:30+00:00",
              "message": f"stray container {STRAY} of failed deployment 4c650e15, removed "
                         "after the grace period"}]
    assert server_event_lines(events, drift, NOW) == [
        "  2m ago  removed stray container shop-web-4c650e15-worker-12 of failed",
        "          deployment 4c650e15",
        "Drift (since):",
        " 30s ago  stray container shop-web-4c650e15 of failed deployment 4c650e15,",
        "          removed after the grace period"]


def test_a_server_without_events_or_drift_says_so() -> None:
    assert server_event_lines([], [], NOW) == [
        "No events yet.", "No drift: the node runs what it should."]


def test_an_unknown_server_is_named_in_one_line(live: Live) -> None:
    one_line_error(live.run("servers", "events", "nowhere"), "no server named 'nowhere'",
                   "dockyard servers list")
