"""A deployment's Server-Sent Events for the CLI: parse them, resume a dropped stream
with Last-Event-ID, and show them live, as plain lines or as JSON lines."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol

import httpx
import typer
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from dockyard.cli.client import ApiClient, ApiError, CliError, _detail, seg
from dockyard.cli.config import CliConfig
from dockyard.cli.output import console, done, errors

RECONNECTS = 5
RECONNECT_PAUSE = 0.2
STREAM_TIMEOUT = httpx.Timeout(30.0, read=90.0)
STATE_STYLES = {"started": "yellow", "done": "green", "failed": "bold red"}


@dataclass(frozen=True)
class Event:
    """One SSE event: its id (the deployment's sequence number), kind and JSON data."""

    id: int | None
    kind: str
    data: dict[str, Any]


def parse(lines: Iterable[str]) -> Iterator[Event]:
    """Events from SSE lines; comments (keep-alives) are skipped, an unfinished event too."""
    fields: dict[str, list[str]] = {}
    for line in lines:
        if not line:
            if "data" in fields:
                yield _event(fields)
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields.setdefault(name, []).append(value.removeprefix(" "))


def _event(fields: dict[str, list[str]]) -> Event:
    raw = "\n".join(fields["data"])
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise CliError(f"the API sent an event whose data is not a JSON object: {raw[:200]!r}")
    seq = fields["id"][-1] if fields.get("id") else data.get("seq")
    kind = fields["event"][-1] if fields.get("event") else data.get("kind", "message")
    return Event(int(seq) if seq not in (None, "") else None, str(kind), data)


class StreamClient(ApiClient):
    """The API client, plus requests whose answer is an event stream."""

    @classmethod
    def from_config(cls, config: CliConfig | None = None) -> StreamClient:
        client = super().from_config(config)
        if not isinstance(client, StreamClient):
            raise TypeError("ApiClient.from_config did not build a StreamClient")
        return client

    def open_stream(self, method: str, path: str, timeout: httpx.Timeout = STREAM_TIMEOUT,
                    **kwargs: Any) -> httpx.Response:
        """An open `text/event-stream` response (the caller closes it); an error status
        raises ApiError, a network failure httpx.TransportError."""
        request = self._http.build_request(
            method, f"/api/v1{path}", timeout=timeout, **kwargs)
        response = self._http.send(request, stream=True)
        if response.status_code >= 400:
            response.read()
            response.close()
            raise ApiError(f"{_detail(response)} (HTTP {response.status_code})",
                           response.status_code)
        if "text/event-stream" not in response.headers.get("content-type", ""):
            response.close()
            raise CliError(f"expected an event stream from {path}, got "
                           f"{response.headers.get('content-type') or 'no content type'}")
        return response

    def unreachable(self, exc: Exception) -> CliError:
        return CliError(f"cannot reach the Dockyard API at {self.url} "
                        f"({exc.__class__.__name__}); is it running? Start it with `dockyard up`")


@dataclass
class Follower:
    """Follows one deployment's events across dropped connections."""

    api: StreamClient
    deployment_id: str | None = None
    last_id: int | None = None
    head: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] | None = None

    def events(self, first: httpx.Response) -> Iterator[Event]:
        """Every event once, in order, until `done`; reconnects after a drop, giving up
        after RECONNECTS attempts in a row that bring no new event."""
        response: httpx.Response | None = first
        attempts = 0
        while True:
            before = self.last_id
            if response is not None:
                yield from self._read(response)
            if self.result is not None:
                return
            attempts = 1 if self.last_id != before else attempts + 1
            if attempts > RECONNECTS:
                raise CliError(self._gave_up())
            time.sleep(RECONNECT_PAUSE * attempts)
            response = self._reopen()

    def _read(self, response: httpx.Response) -> Iterator[Event]:
        self.deployment_id = response.headers.get("x-deployment-id") or self.deployment_id
        try:
            for event in parse(response.iter_lines()):
                if event.id is not None and self.last_id is not None and event.id <= self.last_id:
                    continue
                self._note(event)
                yield event
                if self.result is not None:
                    return
        except httpx.TransportError:
            return
        finally:
            response.close()

    def _note(self, event: Event) -> None:
        self.last_id = event.id if event.id is not None else self.last_id
        if event.kind == "deployment":
            self.head = event.data
            self.deployment_id = event.data.get("deployment_id") or self.deployment_id
        elif event.kind == "done":
            self.result = event.data

    def _reopen(self) -> httpx.Response | None:
        if self.deployment_id is None:
            raise CliError("the event stream ended before the API named the deployment; "
                           "see `dockyard releases -p PROJECT -s SERVICE`")
        headers = {"Last-Event-ID": str(self.last_id)} if self.last_id is not None else {}
        try:
            return self.api.open_stream(
                "GET", f"/infra/deployments/{seg(self.deployment_id)}/events", headers=headers)
        except httpx.TransportError:
            return None
        except ApiError as exc:
            if exc.status_code >= 500:
                return None
            raise

    def _gave_up(self) -> str:
        return (f"lost the event stream of deployment {self.deployment_id} and {RECONNECTS} "
                "reconnects brought nothing new; it may still be running: follow it with "
                f"`dockyard deployments follow {self.deployment_id}`")


def describe(event: Event) -> str:
    """One plain line for an event."""
    data = event.data
    message = data.get("message") or " ".join(
        str(data[k]) for k in ("step", "state", "status", "error") if data.get(k))
    server = data.get("server")
    prefix = f"{server}: "
    line = f"{prefix}{message}" if server and not str(message).startswith(prefix) else str(message)
    if event.kind == "warning":
        return f"warning: {line}"
    return f"  {line}" if event.kind == "log" else line


class View(Protocol):
    def __enter__(self) -> View: ...

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None: ...

    def show(self, event: Event) -> None: ...


class PlainLines:
    """One line per event, for logs and pipes."""

    def __enter__(self) -> PlainLines:
        return self

    def __exit__(self, *_: object) -> None:
        return None

    def show(self, event: Event) -> None:
        console.print(describe(event), markup=False, highlight=False)


class JsonLines(PlainLines):
    """Each event's data as one JSON line, for programs."""

    def show(self, event: Event) -> None:
        typer.echo(json.dumps(event.data))


class LiveBoard(PlainLines):
    """A live display: the phase and each server's step above, output lines scrolling."""

    def __init__(self, out: Console) -> None:
        self.out = out
        self.phase = "waiting for the first event"
        self.servers: dict[str, tuple[str, str, str]] = {}
        self.live = Live(console=out, get_renderable=self._render, refresh_per_second=8)

    def __enter__(self) -> LiveBoard:
        self.live.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.live.stop()

    def show(self, event: Event) -> None:
        data, server = event.data, event.data.get("server")
        if event.kind == "deployment":
            self.servers = {name: ("waiting", "", "") for name in data.get("servers") or []}
        if event.kind in ("phase", "done"):
            self.phase = str(data.get("message") or self.phase)
        elif event.kind == "step" and server:
            self.servers[server] = (data.get("step") or "", data.get("state") or "",
                                    data.get("message") or "")
        else:
            style = {"log": "dim", "warning": "yellow"}.get(event.kind, "")
            self.out.print(Text(describe(event), style=style))
        self.live.refresh()

    def _render(self) -> RenderableType:
        table = Table("server", "step", "state", "", box=None, padding=(0, 2, 0, 0))
        for name, (step, state, message) in self.servers.items():
            table.add_row(name, step, Text(state, style=STATE_STYLES.get(state, "")), message)
        return Group(Text(self.phase, style="bold"), table)


def view_for(as_json: bool) -> View:
    if as_json:
        return JsonLines()
    return LiveBoard(console) if console.is_terminal else PlainLines()


def watch(api: StreamClient, open_first: Callable[[], httpx.Response], as_json: bool,
          deployment_id: str | None = None) -> None:
    """Show a deployment's events until it ends; fail (exit 1) unless it succeeded.
    Ctrl-C stops following only: the deployment goes on on the server."""
    follower = Follower(api, deployment_id)
    try:
        _show_all(follower, _opened(api, open_first), view_for(as_json))
    except KeyboardInterrupt:
        errors.print(_interrupted(follower.deployment_id), markup=False, highlight=False)
        raise typer.Exit(130) from None
    _conclude(follower, as_json)


def _opened(api: StreamClient, open_first: Callable[[], httpx.Response]) -> httpx.Response:
    try:
        return open_first()
    except httpx.TransportError as exc:
        raise api.unreachable(exc) from exc


def _show_all(follower: Follower, first: httpx.Response, view: View) -> None:
    with view:
        for event in follower.events(first):
            view.show(event)


def _conclude(follower: Follower, as_json: bool) -> None:
    result = follower.result or {}
    if result.get("status") != "succeeded":
        reason = result.get("error") or result.get("message") or result.get("status")
        raise CliError(f"deployment {follower.deployment_id} failed: {reason}")
    if not as_json:
        head = follower.head
        done(f"Deployed {head.get('service', '')} {head.get('image', '')}".strip())
        for url in result.get("urls") or []:
            done(f"Open {url}")


def _interrupted(deployment_id: str | None) -> str:
    if deployment_id is None:
        return ("Stopped before the API answered; if the deployment started it goes on on "
                "the server: see `dockyard releases -p PROJECT -s SERVICE`.")
    return (f"Stopped following; deployment {deployment_id} continues on the server. "
            f"Follow it again with `dockyard deployments follow {deployment_id}`.")


def release_live_image(project: str, service: str, as_json: bool = False) -> None:
    """Roll out a new release of the live image with the service's current variables."""
    api = StreamClient.from_config()
    body = {"project": project, "service": service, "source": {"kind": "release"}}
    try:
        watch(api, lambda: api.open_stream("POST", "/infra/deploy", json=body), as_json)
    except ApiError as exc:
        if exc.status_code != 422 or "no release yet" not in str(exc):
            raise
        done(f"{project}/{service} has no release yet; the variables apply at its first deploy.")
