"""Listings for people fit an 80-column terminal with nothing cut to an ellipsis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rich.console import Console

from dockyard.cli import output
from dockyard.cli.deploy import RELEASE_COLUMNS, _release_row
from dockyard.cli.output import ago, cell
from dockyard.cli.resources import SERVER_COLUMNS, status_reasons

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _release(live: bool, error: str = "") -> dict[str, object]:
    return {
        "id": "4d24445a" + "0" * 24, "project": "example", "service": "hello",
        "status": "succeeded" if not error else "failed", "phase": "done",
        "source_kind": "archive", "live": live, "error": error,
        "image_tag": "127.0.0.1:5000/default/example/hello:deploy_4d24445a",
        "created_at": (NOW - timedelta(minutes=12)).isoformat(),
        "finished_at": (NOW - timedelta(minutes=11)).isoformat(),
    }


def _render(rows: list[dict[str, object]], columns: list[str]) -> list[str]:
    """What `show` prints on an 80-column terminal (the CLI's console soft-wraps)."""
    console = Console(width=80, record=True, safe_box=True, soft_wrap=True)
    original, output.console = output.console, console
    try:
        output.show(rows, columns, as_json=False, now=NOW)
    finally:
        output.console = original
    return console.export_text().splitlines()


def test_releases_fit_80_columns_with_short_ids_and_image_tags() -> None:
    failed = _release(False, "health check failed on web-1: the app answered 404 on / " * 3)
    lines = _render([_release_row(_release(True)), _release_row(failed)], RELEASE_COLUMNS)
    assert max(len(line) for line in lines) <= 80
    assert not any("\u2026" in line for line in lines)
    assert lines[3].split() == ["*", "4d24445a", "succeeded", "archive", "deploy_4d24445a",
                                "12m", "ago"]
    text = "\n".join(lines)
    assert "4d24445a " in text
    assert "4d24445a0" not in text
    assert "deploy_4d24445a" in text
    assert "example/hello" not in text


def test_servers_fit_80_columns() -> None:
    server = {"id": "a" * 32, "name": "web-1", "provider": "cluster", "ip": "10.231.0.11",
              "status": "unreachable", "agent_version": "0.1.0", "agent_current": True,
              "agent_fingerprint": ":".join(["AB"] * 32)}
    lines = _render([server], SERVER_COLUMNS)
    assert max(len(line) for line in lines) <= 80
    assert not any("\u2026" in line for line in lines)
    row = lines[-2].split()  # every short value whole on one line (no emoji for ":ab:")
    assert row == ["aaaaaaaa", "web-1", "10.231.0.11", "unreachable", "0.1.0",
                   "AB:AB:AB:AB"]


def test_why_a_server_is_degraded_is_told_under_the_table_within_80_columns() -> None:
    reason = "edge nginx not running; edge nginx not answering: connection refused"
    servers = [{"name": "web-1", "status": "degraded", "status_reason": reason},
               {"name": "web-2", "status": "active", "status_reason": ""}]
    [told] = status_reasons(servers)
    assert told.splitlines() == [
        "web-1 degraded: edge nginx not running; edge nginx not answering: connection",
        "  refused"]


def test_a_server_that_drifts_is_told_under_the_table_with_where_to_look() -> None:
    drift = [{"subject": "shop-web-4c650e15", "since": "2026-12-02T01:00:00Z",
              "message": "stray container shop-web-4c650e15 of failed deployment 4c650e15"},
             {"subject": "shop-api", "since": "2026-12-02T01:00:00Z", "message": "site"}]
    servers = [{"name": "web-1", "status": "active", "status_reason": "", "drift": drift},
               {"name": "web-2", "status": "active", "status_reason": "", "drift": []}]
    [told] = status_reasons(servers)
    assert told.splitlines() == [
        "web-1 differs from what it should run: stray container shop-web-4c650e15 of",
        "  failed deployment 4c650e15 and 1 more (`dockyard servers events web-1`)"]


def test_times_are_relative_and_ids_short() -> None:
    assert ago(NOW - timedelta(seconds=42), NOW) == "42s ago"
    assert ago(NOW - timedelta(minutes=5, seconds=3), NOW) == "5m ago"
    assert ago(NOW - timedelta(hours=3), NOW) == "3h ago"
    assert ago(NOW - timedelta(days=2), NOW) == "2d ago"
    assert ago(NOW - timedelta(days=40), NOW) == "2026-10-22"
    assert cell("id", "0123456789abcdef" * 2) == "01234567"
    assert cell("name", "x" * 70) == "x" * 57 + "..."
