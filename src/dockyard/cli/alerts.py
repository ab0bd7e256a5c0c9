"""`dockyard notify add|list|remove|test|deliveries` (notification channels) and
`dockyard alerts list|rules` (alerts, and a service's traffic thresholds)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from dockyard.cli.client import ApiClient, seg
from dockyard.cli.output import JsonFlag, done, show, show_one
from dockyard.cli.resources import ProjectOpt, ServiceOpt

CHANNELS = "/notification-channels"
CHANNEL_COLUMNS = ["id", "kind", "target", "created_at"]
DELIVERY_COLUMNS = ["created_at", "event", "subject", "status", "attempts", "response_code",
                    "last_error"]
ALERT_COLUMNS = ["first_at", "state", "severity", "subject", "repeats", "resolved_at"]
ChannelArg = Annotated[str, typer.Argument(help="The channel's id (see `dockyard notify list`).")]
notify = typer.Typer(help="Notification channels: where alerts go.", no_args_is_help=True)
alerts = typer.Typer(help="Alerts, and the traffic thresholds that raise them.",
                     no_args_is_help=True)


@notify.command("add")
def add(kind: Annotated[str, typer.Argument(help="webhook, slack, discord or email.")],
        target: Annotated[str, typer.Argument(help="The URL, or the email address.")],
        as_json: JsonFlag = False) -> None:
    """Add a channel; a webhook's signing secret is printed once."""
    found = ApiClient.from_config().post(CHANNELS, {"kind": kind, "target": target})
    if as_json:
        show_one(found, True)
        return
    done(f"Added {found['kind']} channel {found['id']} -> {found['target']}.")
    if found.get("secret"):
        done(f"Signing secret (shown only now): {found['secret']}")


@notify.command("list")
def list_channels(as_json: JsonFlag = False) -> None:
    """The workspace's channels."""
    show(ApiClient.from_config().get(CHANNELS), CHANNEL_COLUMNS, as_json)


@notify.command("remove")
def remove(channel: ChannelArg) -> None:
    """Remove a channel."""
    ApiClient.from_config().delete(f"{CHANNELS}/{seg(channel)}")
    done(f"Removed channel {channel}.")


@notify.command("test")
def send_test(channel: ChannelArg, as_json: JsonFlag = False) -> None:
    """Send a test notification now and show how it went."""
    show_one(ApiClient.from_config().post(f"{CHANNELS}/{seg(channel)}/test", None), as_json)


@notify.command("deliveries")
def deliveries(channel: ChannelArg, as_json: JsonFlag = False) -> None:
    """The channel's deliveries, newest first."""
    rows = ApiClient.from_config().get(f"{CHANNELS}/{seg(channel)}/deliveries")
    show(rows, DELIVERY_COLUMNS, as_json)


@alerts.command("list")
def list_alerts(firing: Annotated[bool, typer.Option(
        "--firing", help="Only the alerts firing now.")] = False,
        as_json: JsonFlag = False) -> None:
    """The workspace's alerts, newest first."""
    params = {"state": "firing"} if firing else {}
    show(ApiClient.from_config().get("/alerts", **params), ALERT_COLUMNS, as_json)


def rule_body(max_5xx_rate: float | None, max_p95_ms: int | None, window: int
              ) -> dict[str, Any]:
    return {"max_5xx_rate": max_5xx_rate, "max_p95_ms": max_p95_ms, "window_seconds": window}


@alerts.command("rules")
def rules(project: ProjectOpt, service: ServiceOpt,
          max_5xx_rate: Annotated[float | None, typer.Option(
              "--max-5xx-rate", help="Alert above this share of 5xx answers (0..1).")] = None,
          max_p95_ms: Annotated[int | None, typer.Option(
              "--max-p95-ms", help="Alert above this p95 latency in ms.")] = None,
          window: Annotated[int, typer.Option(help="Window in seconds (60..3600).")] = 300,
          off: Annotated[bool, typer.Option("--off", help="Turn both thresholds off.")] = False,
          as_json: JsonFlag = False) -> None:
    """Show a service's thresholds; with --max-5xx-rate / --max-p95-ms / --off, set them."""
    client, path = ApiClient.from_config(), (
        f"/projects/{seg(project)}/services/{seg(service)}/alert-rules")
    if off or max_5xx_rate is not None or max_p95_ms is not None:
        show_one(client.request("PUT", path, json=rule_body(max_5xx_rate, max_p95_ms, window)),
                 as_json)
        return
    show_one(client.get(path), as_json)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the CLI."""
    app.add_typer(notify, name="notify")
    app.add_typer(alerts, name="alerts")
