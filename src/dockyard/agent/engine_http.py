"""HTTP/1.1 to the Docker Engine over its socket (unix or TCP), with h11 and blocking sockets
(run in threads): one connection per request, bodies streamed both ways, JSON streams and
Docker's multiplexed log frames decoded, and a connection taken over for an exec's stdin."""

from __future__ import annotations

import codecs
import contextlib
import json
import socket
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote, urlencode, urlsplit

import h11

from dockyard.kernel.errors import DockyardError

_CHUNK = 64 * 1024
T = TypeVar("T")
_FRAME = struct.Struct(">BxxxL")  # stream (1 stdout, 2 stderr), three zero bytes, length
CLIENT_ERRORS = (400, 404, 409)
BROKEN = (OSError, h11.ProtocolError)  # the connection failed after Docker was reached


class EngineError(DockyardError):
    """Docker refused or failed; carries Docker's status when it is a client error."""

    def __init__(self, message: str, status_code: int = 502) -> None:
        super().__init__(message)
        self.status_code = status_code


def path(template: str, *names: str) -> str:
    """`template` with each `{}` replaced by a name quoted for a URL path (as the Engine's
    own clients quote: `/` and `:` of image references kept)."""
    return template.format(*(quote(name, safe="/:") for name in names))


def query(params: dict[str, Any]) -> str:
    """Booleans as 1/0; lists as repeated keys; None left out."""
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        values = value if isinstance(value, list) else [value]
        pairs += [(key, _text(item)) for item in values if item is not None]
    return f"?{urlencode(pairs)}" if pairs else ""


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def filters(given: dict[str, Any] | None) -> str | None:
    """The Engine's `filters` parameter: JSON of lists of strings."""
    if not given:
        return None
    lists = {key: [_text_filter(v) for v in (value if isinstance(value, list) else [value])]
             for key, value in given.items()}
    return json.dumps(lists)


def _text_filter(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


@dataclass
class Request:
    method: str
    target: str
    json_body: Any = None
    body: Iterable[bytes] | None = None  # sent chunked
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float | None = None  # None: the client's; 0: none (a followed stream)
    upgrade: bool = False  # an exec's attach: the connection is handed over after 101


class Response:
    """The answer's status and its body as it arrives; `close` ends the connection."""

    def __init__(self, sock: socket.socket, conn: h11.Connection, status: int) -> None:
        self.sock, self.conn, self.status = sock, conn, status

    def chunks(self) -> Iterator[bytes]:
        try:
            while isinstance(event := _next_event(self.sock, self.conn), h11.Data):
                yield bytes(event.data)
        finally:
            self.close()

    def read(self) -> bytes:
        return b"".join(self.chunks())

    def json(self) -> Any:
        raw = self.read()
        return json.loads(raw) if raw.strip() else None

    def json_stream(self) -> Streamed[Any]:
        return Streamed(json_objects(self.chunks()), self)

    def payloads(self) -> Streamed[bytes]:
        """What a container wrote, each write as it comes (its multiplexed frames)."""
        return Streamed((data for _, data in frames(self.chunks())), self)

    def close(self) -> None:
        self.sock.close()

    def abort(self) -> None:
        """Ends the connection from any thread: a read waiting in another one returns."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)


class Streamed(Generic[T]):
    """The items of a streamed answer; `abort` when nobody wants the rest, so that the
    thread waiting for the next one (a silent container's followed log) is let go."""

    def __init__(self, items: Iterator[T], response: Response) -> None:
        self.items, self.response = items, response

    def __iter__(self) -> Iterator[T]:
        return self.items

    def abort(self) -> None:
        self.response.abort()


def _next_event(sock: socket.socket, conn: h11.Connection) -> Any:
    while (event := conn.next_event()) is h11.NEED_DATA:
        conn.receive_data(sock.recv(_CHUNK))
    return event


def json_objects(chunks: Iterable[bytes]) -> Iterator[Any]:
    """The JSON values of a stream, however its chunks cut them."""
    decoder, buffer = json.JSONDecoder(), ""
    text = codecs.getincrementaldecoder("utf-8")(errors="replace")
    for chunk in chunks:
        buffer += text.decode(chunk)
        while (start := len(buffer) - len(buffer.lstrip())) < len(buffer):
            try:
                value, end = decoder.raw_decode(buffer, start)
            except json.JSONDecodeError:
                break  # the rest of this value is in a later chunk
            buffer = buffer[end:]
            yield value


def frames(chunks: Iterable[bytes]) -> Iterator[tuple[int, bytes]]:
    """(stream, payload) of Docker's multiplexed stream (a container without a TTY)."""
    buffer = b""
    for chunk in chunks:
        buffer += chunk
        while len(buffer) >= _FRAME.size:
            stream, size = _FRAME.unpack_from(buffer)
            if len(buffer) < _FRAME.size + size:
                break
            yield stream, buffer[_FRAME.size:_FRAME.size + size]
            buffer = buffer[_FRAME.size + size:]


@dataclass(frozen=True)
class Attached:
    """An exec's connection after Docker took it over: what it sent already, then the
    socket (stdin written to it, its output read from it as frames)."""

    sock: socket.socket
    received: bytes

    def chunks(self) -> Iterator[bytes]:
        if self.received:
            yield self.received
        while chunk := self.sock.recv(_CHUNK):
            yield chunk


class EngineHttp:
    """`base_url`: unix:///path/docker.sock, tcp://host:port or http://host:port."""

    def __init__(self, base_url: str, timeout: float) -> None:
        self.base_url, self.timeout = base_url, timeout

    def send(self, request: Request) -> Response | Attached:
        """Docker's answer; an EngineError for a status of 400 and more (with its message)
        or when Docker cannot be reached."""
        try:
            sock = self._connect(request)
        except OSError as exc:
            raise EngineError(f"docker engine unreachable: {exc}", 503) from exc
        try:
            return self._exchange(sock, request)
        except BaseException:
            sock.close()
            raise

    def _connect(self, request: Request) -> socket.socket:
        parts = urlsplit(self.base_url)
        if parts.scheme in ("unix", "http+unix"):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.timeout)
            sock.connect(parts.path)
        else:
            sock = socket.create_connection((parts.hostname or "localhost", parts.port or 2375),
                                            self.timeout)
        sock.settimeout(self._seconds(request))
        return sock

    def _seconds(self, request: Request) -> float | None:
        if request.timeout == 0:
            return None
        return request.timeout if request.timeout is not None else self.timeout

    def _exchange(self, sock: socket.socket, request: Request) -> Response | Attached:
        conn = h11.Connection(h11.CLIENT)
        try:
            _send_request(sock, conn, request)
            answer = _next_event(sock, conn)
        except BROKEN as exc:
            raise EngineError(f"docker engine unreachable: {exc}", 503) from exc
        if answer.status_code == 101:
            return Attached(sock, conn.trailing_data[0])
        response = Response(sock, conn, answer.status_code)
        if answer.status_code >= 400:
            raise _refusal(response)
        return response


def _send_request(sock: socket.socket, conn: h11.Connection, request: Request) -> None:
    headers = [("Host", "docker"), *request.headers.items()]
    payload = None
    if request.json_body is not None:
        payload = json.dumps(request.json_body).encode()
        headers += [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
    elif request.body is not None:
        headers += [("Transfer-Encoding", "chunked")]
    else:
        headers += [("Content-Length", "0")]
    if request.upgrade:
        headers += [("Connection", "Upgrade"), ("Upgrade", "tcp")]
    head = conn.send(h11.Request(method=request.method, target=request.target,
                                 headers=headers)) or b""
    if payload is not None or request.body is None:  # a small request: one write
        sock.sendall(head + (conn.send(h11.Data(data=payload)) or b"" if payload else b"")
                     + (conn.send(h11.EndOfMessage()) or b""))
        return
    sock.sendall(head)
    for chunk in request.body:
        if chunk:
            sock.sendall(conn.send(h11.Data(data=chunk)) or b"")
    sock.sendall(conn.send(h11.EndOfMessage()) or b"")


def _refusal(response: Response) -> EngineError:
    raw = response.read()
    try:
        message = str(json.loads(raw).get("message") or raw.decode(errors="replace"))
    except (ValueError, AttributeError):
        message = raw.decode(errors="replace").strip()
    status = response.status if response.status in CLIENT_ERRORS else 502
    return EngineError(message or f"docker answered {response.status}", status)
