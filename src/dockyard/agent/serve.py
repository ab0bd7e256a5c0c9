"""The agent's HTTP/1.1 server: an ASGI app on asyncio's loop, h11 parsing, TLS from the
standard library. What uvicorn gave the agent, without its 6 MB of imports (its command line,
click, multiprocessing, the protocols the agent never speaks): keep-alive, request bodies and
responses streamed with back-pressure, `http.disconnect` when the caller leaves, the app's
lifespan, and a graceful stop (SIGTERM/SIGINT or `request_exit`) that lets the requests under
way finish for `grace_seconds`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import h11
from starlette.types import ASGIApp as App
from starlette.types import Message

log = logging.getLogger("dockyard.agent.serve")
_READ = 64 * 1024
_ASGI = {"version": "3.0", "spec_version": "2.3"}
_OTHER = object()
_QUEUED_CHUNKS = 16


@dataclass
class Listen:
    host: str
    port: int
    certificate: str | None = None  # PEM files; None: plain HTTP
    private_key: str | None = None
    grace_seconds: float = 10.0
    keep_alive_seconds: float = 5.0  # an idle connection is closed after this (as uvicorn)

    def tls(self) -> ssl.SSLContext | None:
        if self.certificate is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.certificate, self.private_key)
        return context


class Lifespan:
    """The app's startup before the first connection, its shutdown after the last."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.state: dict[str, Any] = {}
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.outbox: asyncio.Queue[Message] = asyncio.Queue()
        self.task: asyncio.Future[None] | None = None

    async def _phase(self, phase: str) -> None:
        await self.inbox.put({"type": f"lifespan.{phase}"})
        done = await self.outbox.get()
        if done["type"] != f"lifespan.{phase}.complete":
            raise RuntimeError(f"the agent's {phase} failed: {done.get('message', '')}")

    async def startup(self) -> None:
        scope = {"type": "lifespan", "asgi": _ASGI, "state": self.state}
        self.task = asyncio.ensure_future(self.app(scope, self.inbox.get, self.outbox.put))
        await self._phase("startup")

    async def shutdown(self) -> None:
        await self._phase("shutdown")
        if self.task is not None:
            await self.task


@dataclass
class Cycle:
    """One request and its response on a connection."""

    body: asyncio.Queue[bytes | None] = field(  # bounded: a caller waits for a slow app
        default_factory=lambda: asyncio.Queue(maxsize=_QUEUED_CHUNKS))
    gone: asyncio.Event = field(default_factory=asyncio.Event)  # the caller left
    done: asyncio.Event = field(default_factory=asyncio.Event)  # the response was sent
    read: asyncio.Event = field(default_factory=asyncio.Event)  # the whole request came
    started: bool = False
    unwanted: bool = False  # the app is done: the rest of the body is read and dropped

    def drop_the_rest(self) -> None:
        self.unwanted = True
        while not self.body.empty():  # a reader waiting for room goes on
            self.body.get_nowait()


class Connection:
    def __init__(self, server: Server, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.server, self.reader, self.writer = server, reader, writer
        self.h11 = h11.Connection(h11.SERVER)
        self.cycle: Cycle | None = None

    async def serve(self) -> None:
        try:
            while not self.server.stopping.is_set():
                request = await self._next_request()
                if request is None:
                    return
                await self._answer(request)
                if self.h11.our_state is not h11.DONE or self.h11.their_state is not h11.DONE:
                    return
                self.h11.start_next_cycle()
        except (h11.ProtocolError, ConnectionError, ssl.SSLError, TimeoutError) as exc:
            log.debug("connection dropped: %s", exc)
        finally:
            self.writer.close()

    async def _receive_event(self) -> Any:
        while (event := self.h11.next_event()) is h11.NEED_DATA:
            self.h11.receive_data(await self.reader.read(_READ))
        return event

    async def _next_request(self) -> h11.Request | None:
        """The next request; None when the caller closes, stays idle too long, or the
        server stops while no request is under way."""
        try:
            async with asyncio.timeout(self.server.listen.keep_alive_seconds):
                event = await _first(self._receive_event(), self.server.stopping.wait())
        except TimeoutError:
            return None
        except h11.RemoteProtocolError as exc:
            await self._refuse(exc.error_status_hint, str(exc))
            return None
        return event if isinstance(event, h11.Request) else None

    async def _answer(self, request: h11.Request) -> None:
        cycle = self.cycle = Cycle()
        reading = asyncio.create_task(self._read_body(cycle))
        try:
            await self.server.app(self._scope(request), self._receive, self._send)
        except Exception:
            log.exception("the agent failed on %s %s", request.method.decode(),
                          request.target.decode(errors="replace"))
        finally:
            await self._finish_reading(cycle, reading)
        if not cycle.started and not cycle.gone.is_set():
            await self._refuse(500, "Internal Server Error")
        elif not cycle.done.is_set() and not cycle.gone.is_set():
            raise ConnectionError("the app ended without finishing its response")

    async def _finish_reading(self, cycle: Cycle, reading: asyncio.Task[None]) -> None:
        """The rest of a body the app did not read is dropped (for a while: a caller still
        sending after that loses its connection), so the next request can come."""
        cycle.drop_the_rest()
        if not cycle.read.is_set() and not cycle.gone.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.server.listen.keep_alive_seconds):
                    await cycle.read.wait()
        reading.cancel()

    def _scope(self, request: h11.Request) -> Message:
        raw_path, _, query = request.target.partition(b"?")
        tls = self.writer.get_extra_info("sslcontext") is not None
        return {"type": "http", "asgi": _ASGI, "http_version": "1.1", "root_path": "",
                "method": request.method.decode(), "scheme": "https" if tls else "http",
                "path": unquote(raw_path.decode("latin-1")), "raw_path": raw_path,
                "query_string": query, "headers": [(k, v) for k, v in request.headers],
                "client": self.writer.get_extra_info("peername")[:2],
                "server": self.writer.get_extra_info("sockname")[:2],
                "state": dict(self.server.lifespan.state)}

    async def _read_body(self, cycle: Cycle) -> None:
        """The body into the cycle's queue; then watch for the caller leaving."""
        try:
            while isinstance(event := await self._receive_event(), h11.Data):
                if not cycle.unwanted:
                    await cycle.body.put(bytes(event.data))
            if not cycle.unwanted:
                await cycle.body.put(None)
            cycle.read.set()
            if isinstance(event, h11.ConnectionClosed):
                cycle.gone.set()
                return
            while data := await self.reader.read(_READ):  # a pipelined request: kept
                self.h11.receive_data(data)
            self.h11.receive_data(b"")
            cycle.gone.set()
        except (ConnectionError, ssl.SSLError, h11.ProtocolError):
            cycle.gone.set()

    async def _receive(self) -> Message:
        cycle = self.cycle
        assert cycle is not None
        if self.h11.they_are_waiting_for_100_continue:
            await self._write(h11.InformationalResponse(status_code=100, headers=[]))
        if not cycle.gone.is_set() and not cycle.done.is_set():
            chunk = await _first(cycle.body.get(), cycle.gone.wait(), cycle.done.wait())
            if chunk is not _OTHER:
                return {"type": "http.request", "body": chunk or b"",
                        "more_body": chunk is not None}
        return {"type": "http.disconnect"}

    async def _send(self, message: Message) -> None:
        cycle = self.cycle
        assert cycle is not None
        if cycle.gone.is_set():
            return
        try:
            await self._send_message(cycle, message)
        except (ConnectionError, ssl.SSLError):
            cycle.gone.set()

    async def _send_message(self, cycle: Cycle, message: Message) -> None:
        if message["type"] == "http.response.start":
            cycle.started = True
            await self._write(h11.Response(status_code=message["status"],
                                           headers=list(message.get("headers", []))))
        elif message["type"] == "http.response.body":
            if body := message.get("body", b""):
                await self._write(h11.Data(data=body))
            if not message.get("more_body", False):
                await self._write(h11.EndOfMessage())
                cycle.done.set()

    async def _write(self, event: Any) -> None:
        data = self.h11.send(event)
        if data:
            self.writer.write(data)
            await self.writer.drain()

    async def _refuse(self, status: int, reason: str) -> None:
        body = reason.encode()
        headers = [("content-type", "text/plain"), ("content-length", str(len(body))),
                   ("connection", "close")]
        try:
            await self._write(h11.Response(status_code=status, headers=headers))
            await self._write(h11.Data(data=body))
            await self._write(h11.EndOfMessage())
        except (h11.LocalProtocolError, ConnectionError):
            pass


async def _first(wanted: Awaitable[Any], *unless: Awaitable[Any]) -> Any:
    """What `wanted` gives, or _OTHER when one of `unless` finishes first (`wanted` is
    then cancelled: an item it would take from a queue stays there)."""
    task = asyncio.ensure_future(wanted)
    others = [asyncio.ensure_future(wait) for wait in unless]
    try:
        await asyncio.wait([task, *others], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiting in (task, *others):
            if not waiting.done():
                waiting.cancel()
    return task.result() if task.done() and not task.cancelled() else _OTHER


class Server:
    def __init__(self, app: App, listen: Listen) -> None:
        self.app, self.listen = app, listen
        self.lifespan = Lifespan(app)
        self.stopping = asyncio.Event()
        self.connections: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    def request_exit(self) -> None:
        """Stop gracefully (from any thread)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.stopping.set)

    def run(self) -> None:
        asyncio.run(self.serve())

    async def serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(RuntimeError, ValueError):  # not the main thread
                self._loop.add_signal_handler(signum, self.stopping.set)
        await self.lifespan.startup()
        listening = await asyncio.start_server(self._connected, self.listen.host,
                                               self.listen.port, ssl=self.listen.tls())
        log.info("agent listening on %s:%s", self.listen.host, self.listen.port)
        await self.stopping.wait()
        listening.close()
        await self._finish_connections()
        await self.lifespan.shutdown()

    async def _connected(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.connections.add(task)
        try:
            await Connection(self, reader, writer).serve()
        finally:
            self.connections.discard(task)

    async def _finish_connections(self) -> None:
        """Requests under way get `grace_seconds` to finish; then they are cancelled."""
        if self.connections:
            _, late = await asyncio.wait(set(self.connections),
                                         timeout=self.listen.grace_seconds)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
